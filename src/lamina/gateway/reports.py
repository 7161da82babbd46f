"""Reads of the accounted calls: totals grouped by key, model, provider or function,
and the call log itself (each call's record, with its bodies where they were kept)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.gateway.errors import InvalidGatewayRequest
from lamina.gateway.function_keys import FUNCTION_KEY_PREFIX
from lamina.gateway.tables import Tables

GROUPS = ("key", "model", "provider", "function")
MAX_CALLS = 1000


async def usage_totals(
    engine: AsyncEngine, tables: Tables, group_by: str, since: float | None, until: float | None
) -> list[dict[str, Any]]:
    usage = tables.usage
    columns = {
        "key": usage.c.key_name,
        "model": usage.c.model,
        "provider": usage.c.provider,
        "function": usage.c.key_name,
    }
    if group_by not in columns:
        raise InvalidGatewayRequest(f"group_by must be one of {', '.join(GROUPS)}")
    column = columns[group_by]
    query = (
        select(
            column.label("group"),
            func.count().label("requests"),
            func.sum(usage.c.prompt_tokens).label("prompt_tokens"),
            func.sum(usage.c.completion_tokens).label("completion_tokens"),
            func.sum(usage.c.cached_tokens).label("cached_tokens"),
            func.sum(usage.c.cost_usd).label("cost_usd"),
            func.sum(func.cast(usage.c.cache_hit, usage.c.prompt_tokens.type)).label("cache_hits"),
            func.sum(func.cast(usage.c.status >= 400, usage.c.prompt_tokens.type)).label("errors"),
        )
        .group_by(column)
        .order_by(column)
    )
    if group_by == "function":
        query = query.where(usage.c.key_id.startswith(FUNCTION_KEY_PREFIX))
    query = query.where(*_between(tables, since, until))
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [
            {
                group_by: row.group,
                "requests": row.requests,
                "prompt_tokens": int(row.prompt_tokens or 0),
                "completion_tokens": int(row.completion_tokens or 0),
                "cached_tokens": int(row.cached_tokens or 0),
                "cost_usd": float(row.cost_usd or 0.0),
                "cache_hits": int(row.cache_hits or 0),
                "errors": int(row.errors or 0),
            }
            for row in rows
        ]


async def call_log(
    engine: AsyncEngine,
    tables: Tables,
    *,
    since: float | None,
    until: float | None,
    key: str | None,
    model: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The newest calls first; `request_body` / `response_body` are the redacted,
    capped JSON texts kept for models that log bodies (else null)."""
    usage, bodies = tables.usage, tables.bodies
    query = (
        select(usage, bodies.c.request, bodies.c.response)
        .select_from(usage.outerjoin(bodies, bodies.c.usage_id == usage.c.id))
        .order_by(usage.c.ts.desc(), usage.c.id.desc())
        .limit(max(1, min(limit, MAX_CALLS)))
    )
    if key is not None:
        query = query.where(usage.c.key_name == key)
    if model is not None:
        query = query.where(usage.c.model == model)
    query = query.where(*_between(tables, since, until))
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [
            {
                **{str(column.name): row._mapping[column] for column in usage.c},
                "request_body": row.request,
                "response_body": row.response,
            }
            for row in rows
        ]


def _between(tables: Tables, since: float | None, until: float | None) -> list[Any]:
    """The conditions for calls that ended in [since, until)."""
    ts = tables.usage.c.ts
    return [c for c in (ts >= since if since is not None else None,
                        ts < until if until is not None else None) if c is not None]  # fmt: skip
