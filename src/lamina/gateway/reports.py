"""Usage totals over the accounted calls, grouped by key, model or provider."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.gateway.errors import InvalidGatewayRequest
from lamina.gateway.function_keys import FUNCTION_KEY_PREFIX
from lamina.gateway.tables import Tables

GROUPS = ("key", "model", "provider", "function")


async def usage_totals(engine: AsyncEngine, tables: Tables, group_by: str,
                       since: float | None, until: float | None) -> list[dict[str, Any]]:
    usage = tables.usage
    columns = {"key": usage.c.key_name, "model": usage.c.model, "provider": usage.c.provider,
               "function": usage.c.key_name}
    if group_by not in columns:
        raise InvalidGatewayRequest(f"group_by must be one of {', '.join(GROUPS)}")
    column = columns[group_by]
    query = select(
        column.label("group"), func.count().label("requests"),
        func.sum(usage.c.prompt_tokens).label("prompt_tokens"),
        func.sum(usage.c.completion_tokens).label("completion_tokens"),
        func.sum(usage.c.cached_tokens).label("cached_tokens"),
        func.sum(usage.c.cost_usd).label("cost_usd"),
        func.sum(func.cast(usage.c.cache_hit, usage.c.prompt_tokens.type)).label("cache_hits"),
        func.sum(func.cast(usage.c.status >= 400, usage.c.prompt_tokens.type)).label("errors"),
    ).group_by(column).order_by(column)
    if group_by == "function":
        query = query.where(usage.c.key_id.startswith(FUNCTION_KEY_PREFIX))
    if since is not None:
        query = query.where(usage.c.ts >= since)
    if until is not None:
        query = query.where(usage.c.ts < until)
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [{group_by: row.group, "requests": row.requests,
                 "prompt_tokens": int(row.prompt_tokens or 0),
                 "completion_tokens": int(row.completion_tokens or 0),
                 "cached_tokens": int(row.cached_tokens or 0),
                 "cost_usd": float(row.cost_usd or 0.0),
                 "cache_hits": int(row.cache_hits or 0), "errors": int(row.errors or 0)}
                for row in rows]
