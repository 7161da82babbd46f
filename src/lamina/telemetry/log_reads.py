"""Reading events back: one stream page by page (GetLogEvents), or a whole group
searched in time order with a filter pattern (FilterLogEvents).

Pages are keyset-paginated on (timestamp, row id), the order events are shown in,
so a token stays valid while new events arrive and never skips or repeats one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, tuple_
from sqlalchemy import select as sql_select
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina.telemetry.filter_pattern import FilterPattern
from lamina.telemetry.log_model import LogEvent, decode_token, encode_token, invalid_parameter
from lamina.telemetry.log_tables import log_events, log_streams

MAX_EVENTS = 10_000
# A page holds at most 1 MB of messages (plus CloudWatch's 26 bytes per event).
MAX_PAGE_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
# FilterLogEvents may answer with a partial (even empty) page and a token rather than
# scan a whole large group in one request.
_SCAN_CHUNK = 1000
_SCAN_BUDGET = 50_000

Position = tuple[int, int] | None
_EventSelect = Select[tuple[int, int, int, str, str]]


@dataclass(frozen=True, slots=True)
class TimeRange:
    start_ms: int | None = None  # inclusive
    end_ms: int | None = None  # exclusive, as CloudWatch's endTime

    def apply(self, query: _EventSelect) -> _EventSelect:
        if self.start_ms is not None:
            query = query.where(log_events.c.timestamp_ms >= self.start_ms)
        if self.end_ms is not None:
            query = query.where(log_events.c.timestamp_ms < self.end_ms)
        return query


def check_limit(limit: int | None) -> int:
    if limit is None:
        return MAX_EVENTS
    if not 1 <= limit <= MAX_EVENTS:
        raise invalid_parameter(f"limit must be between 1 and {MAX_EVENTS}, got {limit}.")
    return limit


def _position_token(direction: str, position: Position) -> str:
    ts, row = position if position is not None else (None, None)
    return f"{direction}/" + encode_token(direction, ts, row)


def _parse_position_token(token: str) -> tuple[str, Position]:
    direction, _, body = token.partition("/")
    if direction not in ("f", "b") or not body:
        raise invalid_parameter("The specified nextToken is invalid.")
    ts, row = decode_token(body, direction, [(int, type(None)), (int, type(None))])
    if isinstance(ts, int) and isinstance(row, int):
        return direction, (ts, row)
    return direction, None


def _events_query(forward: bool, position: Position) -> _EventSelect:
    key = tuple_(log_events.c.timestamp_ms, log_events.c.id)
    query = sql_select(
        log_events.c.id,
        log_events.c.timestamp_ms,
        log_events.c.ingestion_ms,
        log_events.c.message,
        log_streams.c.name,
    ).join(log_streams, log_streams.c.id == log_events.c.stream_id)
    if position is not None:
        query = query.where(key > tuple_(*position) if forward else key < tuple_(*position))
    if forward:
        return query.order_by(log_events.c.timestamp_ms, log_events.c.id)
    return query.order_by(log_events.c.timestamp_ms.desc(), log_events.c.id.desc())


def _event(row: Sequence[object]) -> LogEvent:
    row_id, ts, ingested, message, stream = row
    assert isinstance(row_id, int) and isinstance(ts, int) and isinstance(ingested, int)
    return LogEvent(str(stream), ts, str(message), ingested, row_id)


def _size(event: LogEvent) -> int:
    return len(event.message.encode()) + EVENT_OVERHEAD_BYTES


async def read_stream(
    conn: AsyncConnection,
    stream_id: int,
    span: TimeRange,
    start_from_head: bool,
    limit: int | None,
    token: str | None,
) -> tuple[list[LogEvent], str, str]:
    """A page of one stream, oldest first, with its forward and backward tokens.

    Without a token the page is the stream's head (start_from_head) or its tail. At
    either end of the stream the token of that direction comes back unchanged, which
    is how CloudWatch clients know to stop.
    """
    count = check_limit(limit)
    direction, position = (
        _parse_position_token(token) if token else ("f" if start_from_head else "b", None)
    )
    forward = direction == "f"
    query = span.apply(_events_query(forward, position))
    query = query.where(log_events.c.stream_id == stream_id).limit(count)
    events: list[LogEvent] = []
    size = 0
    for row in (await conn.execute(query)).all():
        event = _event(tuple(row))
        size += _size(event)
        if events and size > MAX_PAGE_BYTES:
            break
        events.append(event)
    if not forward:
        events.reverse()
    if not events:
        return events, _position_token("f", position), _position_token("b", position)
    first, last = events[0], events[-1]
    return (
        events,
        _position_token("f", (last.timestamp_ms, last.row_id)),
        _position_token("b", (first.timestamp_ms, first.row_id)),
    )


async def search_group(
    conn: AsyncConnection,
    group_id: int,
    stream_ids: Sequence[int] | None,
    stream_prefix: str | None,
    span: TimeRange,
    pattern: FilterPattern,
    start_from_head: bool,
    limit: int | None,
    token: str | None,
) -> tuple[list[LogEvent], str | None]:
    """Matching events of a group across its streams, in time order, and the next token."""
    count = check_limit(limit)
    direction, position = (
        _parse_position_token(token) if token else ("f" if start_from_head else "b", None)
    )
    forward = direction == "f"
    base = span.apply(_events_query(forward, None)).where(log_events.c.group_id == group_id)
    if stream_ids is not None:
        base = base.where(log_events.c.stream_id.in_(stream_ids))
    if stream_prefix:
        # substr, not LIKE: stream names are case-sensitive and LIKE folds case in SQLite.
        base = base.where(func.substr(log_streams.c.name, 1, len(stream_prefix)) == stream_prefix)
    for term in pattern.required_terms:
        base = base.where(log_events.c.message.contains(term, autoescape=True))
    key = tuple_(log_events.c.timestamp_ms, log_events.c.id)
    events: list[LogEvent] = []
    size = scanned = 0
    while True:
        query = base
        if position is not None:
            query = query.where(key > tuple_(*position) if forward else key < tuple_(*position))
        rows = (await conn.execute(query.limit(_SCAN_CHUNK))).all()
        for row in rows:
            event = _event(tuple(row))
            if pattern.matches(event.message):
                size += _size(event)
                if events and size > MAX_PAGE_BYTES:
                    return events, _position_token(direction, position)
                events.append(event)
            position = (event.timestamp_ms, event.row_id)
            scanned += 1
            if len(events) == count:
                return events, _position_token(direction, position)
        if len(rows) < _SCAN_CHUNK:
            return events, None
        if scanned >= _SCAN_BUDGET:
            return events, _position_token(direction, position)
