"""LogStore: the durable store of function logs, modelled on CloudWatch Logs.

Writers on the invoke path call `append`, which only buffers in memory: the invoke
path must never wait on the database. A flusher task owned by the store writes what
accumulated in one transaction per batch, within `linger_s` plus one write. Reads flush
first, so a reader always sees every event appended before its call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import ClassVar

from sqlalchemy import MetaData, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.telemetry import log_catalog
from lamina.telemetry.filter_pattern import parse_filter_pattern
from lamina.telemetry.log_catalog import find_group, find_stream
from lamina.telemetry.log_model import (
    LogEvent,
    LogGroup,
    LogStream,
    already_exists,
    check_group_name,
    check_stream_name,
    invalid_parameter,
)
from lamina.telemetry.log_reads import TimeRange, read_stream, search_group
from lamina.telemetry.log_tables import log_events, log_groups, log_metadata, log_streams
from lamina.telemetry.log_writes import (
    PendingEvent,
    StreamIds,
    clip,
    write_batch,
    write_stream,
)

logger = logging.getLogger(__name__)

_BATCH_EVENTS = 5000
_WRITE_ATTEMPTS = 3


class LogStore:
    metadata: ClassVar[MetaData] = log_metadata

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], float] = time.time,
        *,
        linger_s: float = 0.05,
        max_buffered_events: int = 100_000,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._linger_s = linger_s
        self._max_buffered = max_buffered_events
        self._buffer: deque[PendingEvent] = deque()
        self._wake = asyncio.Event()
        # One writer at a time: the flusher and explicit flushes share it, so a flush
        # returns only after a batch the flusher already took is written too.
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failures = 0
        self.dropped_events = 0
        self._reported_drops = 0
        # Ids of streams written to before. Entries are added inside a write's
        # transaction, so the cache is dropped whenever a write fails (a rolled-back
        # stream insert) and whenever groups or streams are deleted.
        self._stream_ids: StreamIds = {}

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- writing ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="lamina-logstore-flusher")
        if self._buffer:
            self._wake.set()

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task
        await self.flush()

    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        """Buffer `events` ((timestamp ms, message) pairs); must be called on the loop.

        Past `max_buffered_events` (the database is down or far behind) new events are
        dropped and counted, so a function printing without end cannot exhaust memory.
        """
        room = self._max_buffered - len(self._buffer)
        if len(events) > room:
            self.dropped_events += len(events) - max(room, 0)
            events = events[: max(room, 0)]
        if not events:
            return
        ingested = self.now_ms()
        self._buffer.extend(
            PendingEvent(group, stream, ts, clip(message), ingested) for ts, message in events
        )
        self._wake.set()

    async def flush(self) -> None:
        """Write everything buffered before this call.

        Events appended while it writes are left to the flusher: a reader's flush must
        not be kept busy by a function that never stops printing.
        """
        async with self._write_lock:
            remaining = len(self._buffer)
            while remaining > 0 and self._buffer:
                size = min(len(self._buffer), remaining, _BATCH_EVENTS)
                remaining -= size
                batch = [self._buffer.popleft() for _ in range(size)]
                try:
                    async with self._engine.begin() as conn:
                        await write_batch(conn, batch, self.now_ms(), self._stream_ids)
                except Exception:
                    self._stream_ids.clear()
                    self._failures += 1
                    if self._failures < _WRITE_ATTEMPTS:
                        self._buffer.extendleft(reversed(batch))
                    else:
                        self._failures = 0
                        self.dropped_events += len(batch)
                        logger.error("dropped %d log events after repeated failures", size)
                    raise
                self._failures = 0

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            if not self._closing:
                await asyncio.sleep(self._linger_s)  # let a burst gather into one batch
            try:
                await self.flush()
            except Exception:
                logger.exception("writing log events failed; retrying in 1 s")
                await asyncio.sleep(1.0)
                self._wake.set()
            if self.dropped_events > self._reported_drops:
                # Once per batch, not per append: a flood must not become a log flood.
                logger.warning(
                    "log buffer full: dropped %d events (%d in all)",
                    self.dropped_events - self._reported_drops,
                    self.dropped_events,
                )
                self._reported_drops = self.dropped_events

    async def put_events(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        """Write `events` to an existing stream now (PutLogEvents: durable before the reply)."""
        async with self._engine.begin() as conn:
            await write_stream(conn, group, stream, events, self.now_ms())

    # -- groups and streams -----------------------------------------------------------

    async def create_group(self, name: str) -> None:
        check_group_name(name)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    log_groups.insert().values(name=name, created_ms=self.now_ms(), stored_bytes=0)
                )
        except IntegrityError as exc:
            raise already_exists("log group") from exc

    async def delete_group(self, name: str) -> None:
        await self.flush()  # or buffered events would re-create the group just deleted
        self._stream_ids.clear()
        async with self._engine.begin() as conn:
            group_id = await find_group(conn, name)
            await conn.execute(delete(log_events).where(log_events.c.group_id == group_id))
            await conn.execute(delete(log_streams).where(log_streams.c.group_id == group_id))
            await conn.execute(delete(log_groups).where(log_groups.c.id == group_id))

    async def create_stream(self, group: str, stream: str) -> None:
        check_stream_name(stream)
        try:
            async with self._engine.begin() as conn:
                group_id = await find_group(conn, group)
                await conn.execute(
                    log_streams.insert().values(
                        group_id=group_id, name=stream, created_ms=self.now_ms(), stored_bytes=0
                    )
                )
        except IntegrityError as exc:
            raise already_exists("log stream") from exc

    async def delete_stream(self, group: str, stream: str) -> None:
        await self.flush()
        self._stream_ids.clear()
        async with self._engine.begin() as conn:
            group_id, stream_id = await find_stream(conn, group, stream)
            await conn.execute(delete(log_events).where(log_events.c.stream_id == stream_id))
            await conn.execute(delete(log_streams).where(log_streams.c.id == stream_id))
            await log_catalog.recount_group(conn, group_id)

    async def describe_groups(
        self,
        prefix: str | None = None,
        limit: int = 50,
        token: str | None = None,
        pattern: str | None = None,
    ) -> tuple[list[LogGroup], str | None]:
        if prefix and pattern:
            raise invalid_parameter(
                "logGroupNamePattern and logGroupNamePrefix are mutually exclusive."
            )
        async with self._engine.connect() as conn:
            return await log_catalog.list_groups(conn, prefix, pattern, limit, token)

    async def describe_streams(
        self,
        group: str,
        prefix: str | None = None,
        order_by: str = "LogStreamName",
        descending: bool = False,
        limit: int = 50,
        token: str | None = None,
    ) -> tuple[list[LogStream], str | None]:
        await self.flush()
        async with self._engine.connect() as conn:
            group_id = await find_group(conn, group)
            return await log_catalog.list_streams(
                conn, group_id, prefix, order_by, descending, limit, token
            )

    # -- events -----------------------------------------------------------------------

    async def get_events(
        self,
        group: str,
        stream: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        start_from_head: bool = False,
        limit: int | None = None,
        token: str | None = None,
    ) -> tuple[list[LogEvent], str, str]:
        await self.flush()
        async with self._engine.connect() as conn:
            _group_id, stream_id = await find_stream(conn, group, stream)
            return await read_stream(
                conn, stream_id, TimeRange(start_ms, end_ms), start_from_head, limit, token
            )

    async def filter_events(
        self,
        group: str,
        stream_names: Sequence[str] | None = None,
        stream_prefix: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        filter_pattern: str | None = None,
        limit: int | None = None,
        token: str | None = None,
        start_from_head: bool = True,
    ) -> tuple[list[LogEvent], str | None]:
        if stream_names and stream_prefix:
            raise invalid_parameter(
                "logStreamNames and logStreamNamePrefix cannot both be specified."
            )
        pattern = parse_filter_pattern(filter_pattern)
        await self.flush()
        async with self._engine.connect() as conn:
            group_id = await find_group(conn, group)
            stream_ids = None
            if stream_names:
                found = await conn.execute(
                    select(log_streams.c.id).where(
                        log_streams.c.group_id == group_id, log_streams.c.name.in_(stream_names)
                    )
                )
                stream_ids = list(found.scalars())
            return await search_group(
                conn,
                group_id,
                stream_ids,
                stream_prefix,
                TimeRange(start_ms, end_ms),
                pattern,
                start_from_head,
                limit,
                token,
            )
