"""Writing events: a buffered batch from many streams, or one stream's PutLogEvents.

Either way it is one INSERT of all rows plus one stats update per stream and group,
inside the caller's transaction.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncConnection

from lamina.telemetry import log_catalog
from lamina.telemetry.log_tables import log_events

# CloudWatch's largest event is 256 KiB including 26 bytes of overhead; longer lines
# are cut, as Lambda's log agent does, rather than refused.
MAX_MESSAGE_BYTES = 256 * 1024 - 26


class PendingLines(NamedTuple):
    """One append's events (an invocation's lines, say), as buffered: one object for
    them all, clipped only when written, so the invoke path allocates little."""

    group: str
    stream: str
    ingestion_ms: int
    events: Sequence[tuple[int, str]]  # (timestamp ms, message)


# A row of log_events, in _COLUMNS' order.
Row = tuple[int, int, int, int, str]


def clip(message: str) -> str:
    """`message` as it can be stored: valid UTF-8, no NUL, at most MAX_MESSAGE_BYTES."""
    if "\x00" in message:  # PostgreSQL text cannot hold NUL
        message = message.replace("\x00", "\ufffd")
    if message.isascii():  # the common case, and cheap to test
        return message[:MAX_MESSAGE_BYTES]
    try:
        encoded = message.encode()
    except UnicodeEncodeError:
        # Lone surrogates (output decoded with surrogateescape) cannot be stored; one
        # such line must not fail the batch it is in.
        encoded = message.encode(errors="replace")
        message = encoded.decode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return message
    return encoded[:MAX_MESSAGE_BYTES].decode(errors="ignore")


_COLUMNS = ("group_id", "stream_id", "timestamp_ms", "ingestion_ms", "message")
_MARKS = {"qmark": "?", "format": "%s", "numeric_dollar": "${}"}


# Rows per INSERT: under SQLite's (and asyncpg's) 32,766 bound parameters, five a row.
CHUNK_ROWS = 4096


@functools.lru_cache(maxsize=32)
def _driver_insert(mark: str, rows: int) -> str:
    """One INSERT of `rows` rows with the driver's own parameter `mark`.

    Sent with exec_driver_sql: Core's per-row parameter processing measured ~10% of
    the server's CPU per warm invoke (three rows each). Many rows to a statement, not
    executemany: the SQLite driver lets go of the GIL around every statement it steps,
    and a batch of a thousand single-row steps, each handing the GIL back and forth
    with the event loop's thread, measured more of the server's CPU than the rows.
    """
    width = len(_COLUMNS)
    if "{}" in mark:  # numbered: $1, $2, ...
        values = ", ".join(
            "(" + ", ".join(mark.format(r * width + c + 1) for c in range(width)) + ")"
            for r in range(rows)
        )
    else:
        values = ", ".join(["(" + ", ".join([mark] * width) + ")"] * rows)
    return f"INSERT INTO {log_events.name} ({', '.join(_COLUMNS)}) VALUES {values}"


async def _insert(conn: AsyncConnection, rows: list[Row]) -> None:
    if not rows:
        return
    mark = _MARKS.get(conn.dialect.paramstyle)
    if mark is None:  # a driver with named parameters only
        await conn.execute(
            log_events.insert(), [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        )
    else:
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start : start + CHUNK_ROWS]
            sql = _driver_insert(mark, len(chunk))
            await conn.exec_driver_sql(sql, tuple(itertools.chain.from_iterable(chunk)))
    await log_catalog.record_events(conn, rows)


StreamIds = dict[tuple[str, str], tuple[int, int]]


async def write_batch(
    conn: AsyncConnection, batch: Sequence[PendingLines], now_ms: int, known: StreamIds
) -> None:
    """Write buffered events, creating their groups and streams where they are new.

    `known` caches (group, stream) -> ids across batches, so a warm stream costs no
    lookup; the caller drops it when a write fails or a group or stream is deleted.
    """
    rows: list[Row] = []
    for group, stream, ingested, events in batch:
        ids = known.get((group, stream))
        if ids is None:
            group_id = await log_catalog.ensure_group(conn, group, now_ms)
            stream_id = await log_catalog.ensure_stream(conn, group_id, stream, now_ms)
            ids = known[(group, stream)] = (group_id, stream_id)
        group_id, stream_id = ids
        rows += [(group_id, stream_id, ts, ingested, clip(message)) for ts, message in events]
    await _insert(conn, rows)


async def write_stream(
    conn: AsyncConnection, group: str, stream: str, events: Sequence[tuple[int, str]], now_ms: int
) -> None:
    """Write events to a stream that must already exist (PutLogEvents' rule)."""
    group_id, stream_id = await log_catalog.find_stream(conn, group, stream)
    await _insert(conn, [(group_id, stream_id, ts, now_ms, clip(message)) for ts, message in events])
