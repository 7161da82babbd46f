"""Retention: a group with a retention policy loses events older than its days.

Expiry runs in chunks, each its own short transaction, so clearing a large backlog
never holds SQLite's single write lock long enough to stall durable enqueues.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina.telemetry.log_model import invalid_parameter
from lamina.telemetry.log_tables import log_events, log_groups, log_streams

# The values CloudWatch accepts for retentionInDays.
RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
DAY_MS = 86_400_000
EXPIRY_CHUNK = 5000


def _less(column: ColumnElement[int], amount: int) -> ColumnElement[int]:
    # Sizes are counted in characters here (bytes when written), so never go below 0.
    return case((column > amount, column - amount), else_=0)


def check_retention(days: int) -> None:
    if days not in RETENTION_DAYS:
        raise invalid_parameter(
            f"retentionInDays {days} is not one of {', '.join(map(str, RETENTION_DAYS))}."
        )


async def expire_chunk(conn: AsyncConnection, now_ms: int) -> int:
    """Delete up to EXPIRY_CHUNK expired events and fix their streams' stats."""
    e, g, s = log_events.c, log_groups.c, log_streams.c
    rows: list[Any] = []
    # Group by group, so each lookup is a range on the (group, time) index rather
    # than a scan of every event.
    policies = await conn.execute(
        select(g.id, g.retention_days).where(g.retention_days.is_not(None))
    )
    for group_id, days in policies.all():
        expired = (
            select(e.id, e.group_id, e.stream_id, func.length(e.message))
            .where(e.group_id == group_id, e.timestamp_ms < now_ms - days * DAY_MS)
            .limit(EXPIRY_CHUNK - len(rows))
        )
        rows.extend((await conn.execute(expired)).all())
        if len(rows) >= EXPIRY_CHUNK:
            break
    if not rows:
        return 0
    await conn.execute(log_events.delete().where(e.id.in_([row[0] for row in rows])))
    per_stream: dict[int, int] = defaultdict(int)
    per_group: dict[int, int] = defaultdict(int)
    for _id, group_id, stream_id, size in rows:
        per_stream[stream_id] += size or 0
        per_group[group_id] += size or 0
    for stream_id, size in per_stream.items():
        oldest = select(func.min(e.timestamp_ms)).where(e.stream_id == stream_id)
        await conn.execute(
            update(log_streams)
            .where(s.id == stream_id)
            .values(
                first_event_ms=oldest.scalar_subquery(),
                stored_bytes=_less(s.stored_bytes, size),
            )
        )
    for group_id, size in per_group.items():
        await conn.execute(
            update(log_groups)
            .where(g.id == group_id)
            .values(stored_bytes=_less(g.stored_bytes, size))
        )
    return len(rows)
