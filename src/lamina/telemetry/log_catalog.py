"""Log groups and streams in SQL: find, create-if-missing, list, and keep stream stats.

Appends create their group and stream on first use (as Lambda's log agent does), so
creation must tolerate a concurrent creator: insert-if-absent, then read the id.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    Insert,
    Table,
    Update,
    bindparam,
    case,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina.telemetry.log_model import (
    LogGroup,
    LogStream,
    decode_token,
    encode_token,
    group_not_found,
    invalid_parameter,
    stream_not_found,
)
from lamina.telemetry.log_tables import log_groups, log_streams

ORDER_BY = ("LogStreamName", "LastEventTime")


def _insert_if_absent(conn: AsyncConnection, table: Table) -> Insert:
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return table.insert()


async def find_group(conn: AsyncConnection, name: str) -> int:
    found = await conn.scalar(select(log_groups.c.id).where(log_groups.c.name == name))
    if found is None:
        raise group_not_found()
    return int(found)


async def find_stream(conn: AsyncConnection, group: str, stream: str) -> tuple[int, int]:
    group_id = await find_group(conn, group)
    found = await conn.scalar(
        select(log_streams.c.id).where(
            log_streams.c.group_id == group_id, log_streams.c.name == stream
        )
    )
    if found is None:
        raise stream_not_found()
    return group_id, int(found)


async def ensure_group(conn: AsyncConnection, name: str, now_ms: int) -> int:
    query = select(log_groups.c.id).where(log_groups.c.name == name)
    found = await conn.scalar(query)
    if found is None:
        insert = _insert_if_absent(conn, log_groups)
        await conn.execute(insert.values(name=name, created_ms=now_ms, stored_bytes=0))
        found = await conn.scalar(query)
    assert found is not None  # inserted just now, or by whoever won the race
    return int(found)


async def ensure_stream(conn: AsyncConnection, group_id: int, name: str, now_ms: int) -> int:
    query = select(log_streams.c.id).where(
        log_streams.c.group_id == group_id, log_streams.c.name == name
    )
    found = await conn.scalar(query)
    if found is None:
        insert = _insert_if_absent(conn, log_streams)
        await conn.execute(
            insert.values(group_id=group_id, name=name, created_ms=now_ms, stored_bytes=0)
        )
        found = await conn.scalar(query)
    assert found is not None  # inserted just now, or by whoever won the race
    return int(found)


def _stream_stats_update() -> Update:
    c = log_streams.c
    first, last = bindparam("first", type_=BigInteger), bindparam("last", type_=BigInteger)
    return (
        update(log_streams)
        .where(c.id == bindparam("sid"))
        .values(
            first_event_ms=case(
                (or_(c.first_event_ms.is_(None), c.first_event_ms > first), first),
                else_=c.first_event_ms,
            ),
            last_event_ms=case(
                (or_(c.last_event_ms.is_(None), c.last_event_ms < last), last),
                else_=c.last_event_ms,
            ),
            last_ingestion_ms=bindparam("ingested", type_=BigInteger),
            stored_bytes=c.stored_bytes + bindparam("size", type_=BigInteger),
        )
    )


_STREAM_STATS = _stream_stats_update()
_GROUP_BYTES = (
    update(log_groups)
    .where(log_groups.c.id == bindparam("gid"))
    .values(stored_bytes=log_groups.c.stored_bytes + bindparam("size", type_=BigInteger))
)


async def record_events(conn: AsyncConnection, rows: Sequence[tuple[int, int, int, int, str]]) -> None:
    """Fold newly written events — (group id, stream id, timestamp, ingestion time,
    message) rows — into their streams' first/last times and sizes.

    One executemany per table, whatever the number of streams: a batch's fixed cost
    runs on the event loop, so it is kept to a few statements.
    """
    per_stream: dict[int, dict[str, int]] = {}
    per_group: dict[int, int] = {}
    for group_id, stream_id, ts, ingested, message in rows:
        size = len(message) if message.isascii() else len(message.encode())
        stats = per_stream.get(stream_id)
        if stats is None:
            stats = per_stream[stream_id] = {
                "sid": stream_id, "first": ts, "last": ts, "ingested": ingested, "size": 0
            }  # fmt: skip
        elif ts < stats["first"]:
            stats["first"] = ts
        elif ts > stats["last"]:
            stats["last"] = ts
        if ingested > stats["ingested"]:
            stats["ingested"] = ingested
        stats["size"] += size
        per_group[group_id] = per_group.get(group_id, 0) + size
    await conn.execute(_STREAM_STATS, list(per_stream.values()))
    await conn.execute(_GROUP_BYTES, [{"gid": g, "size": n} for g, n in per_group.items()])


async def recount_group(conn: AsyncConnection, group_id: int) -> None:
    """Set a group's stored bytes to the sum of its streams' (after a stream is gone)."""
    total = (
        select(func.coalesce(func.sum(log_streams.c.stored_bytes), 0))
        .where(log_streams.c.group_id == group_id)
        .scalar_subquery()
    )
    await conn.execute(
        update(log_groups).where(log_groups.c.id == group_id).values(stored_bytes=total)
    )


def _check_page_size(limit: int) -> None:
    if not 1 <= limit <= 50:
        raise invalid_parameter(f"limit must be between 1 and 50, got {limit}.")


async def list_groups(
    conn: AsyncConnection, prefix: str | None, pattern: str | None, limit: int, token: str | None
) -> tuple[list[LogGroup], str | None]:
    _check_page_size(limit)
    query = select(log_groups).order_by(log_groups.c.name)
    if prefix:
        query = query.where(func.substr(log_groups.c.name, 1, len(prefix)) == prefix)
    if pattern:
        # LIKE narrows (it folds case in SQLite); the exact, case-sensitive test is below.
        query = query.where(log_groups.c.name.contains(pattern, autoescape=True))
    if token:
        (after,) = decode_token(token, "groups", [str])
        query = query.where(log_groups.c.name > after)
    groups: list[LogGroup] = []
    for row in (await conn.execute(query)).mappings():
        if pattern and pattern not in row["name"]:
            continue
        if len(groups) == limit:
            return groups, encode_token("groups", groups[-1].name)
        groups.append(
            LogGroup(row["name"], row["created_ms"], row["retention_days"], row["stored_bytes"])
        )
    return groups, None


async def list_streams(
    conn: AsyncConnection,
    group_id: int,
    prefix: str | None,
    order_by: str,
    descending: bool,
    limit: int,
    token: str | None,
) -> tuple[list[LogStream], str | None]:
    _check_page_size(limit)
    if order_by not in ORDER_BY:
        raise invalid_parameter(f"orderBy must be one of {', '.join(ORDER_BY)}.")
    if order_by == "LastEventTime" and prefix:
        raise invalid_parameter("Cannot order by LastEventTime with a logStreamNamePrefix.")
    c = log_streams.c
    # Streams without events sort first, as if their last event were at time -1.
    last = func.coalesce(c.last_event_ms, -1)
    key = tuple_(last, c.name) if order_by == "LastEventTime" else tuple_(c.name)
    columns = (last, c.name) if order_by == "LastEventTime" else (c.name,)
    kind = f"streams:{order_by}:{int(descending)}"
    query = select(log_streams).where(c.group_id == group_id)
    if prefix:
        query = query.where(func.substr(c.name, 1, len(prefix)) == prefix)
    if token:
        types: list[type] = [int, str] if order_by == "LastEventTime" else [str]
        after = tuple_(*decode_token(token, kind, types))
        query = query.where(key < after if descending else key > after)
    query = query.order_by(*(col.desc() if descending else col for col in columns))
    rows = (await conn.execute(query.limit(limit + 1))).mappings().all()
    streams = [
        LogStream(
            r["name"],
            r["created_ms"],
            r["first_event_ms"],
            r["last_event_ms"],
            r["last_ingestion_ms"],
            r["stored_bytes"],
        )
        for r in rows[:limit]
    ]
    if len(rows) <= limit:
        return streams, None
    tail = streams[-1]
    parts = (tail.last_event_ms or -1, tail.name) if order_by == "LastEventTime" else (tail.name,)
    return streams, encode_token(kind, *parts)
