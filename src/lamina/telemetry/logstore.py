"""LogStore: the durable store of function logs, modelled on CloudWatch Logs.

Writers on the invoke path call `append`, which only buffers (see log_buffer.py); the
store's flusher writes within `linger_s` plus one transaction. Reads flush first, so a
reader always sees every event appended before its call. Groups with a retention
policy are expired by a second task, hourly by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from sqlalchemy import MetaData, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.telemetry import log_catalog
from lamina.telemetry.filter_pattern import parse_filter_pattern
from lamina.telemetry.log_buffer import LogBuffer
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
from lamina.telemetry.log_retention import EXPIRY_CHUNK, check_retention, expire_chunk
from lamina.telemetry.log_tables import log_events, log_groups, log_metadata, log_streams
from lamina.telemetry.log_writes import write_stream

logger = logging.getLogger(__name__)


class LogStore:
    metadata: ClassVar[MetaData] = log_metadata

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], float] = time.time,
        *,
        # Batches of ~0.2 s: each costs a transaction's fixed work (~1 ms of CPU), while
        # readers flush first and never see a delay.
        linger_s: float = 0.2,
        max_buffered_events: int = 100_000,
        expiry_interval_s: float = 3600.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._buffer = LogBuffer(engine, self.now_ms, linger_s, max_buffered_events)
        self._expiry_interval_s = expiry_interval_s
        self._expiry_task: asyncio.Task[None] | None = None
        # Other serving processes' buffers (serving/): written before a read, so that a
        # reader sees every process's events; with `True`, their cached stream ids are
        # forgotten too (after a delete).
        self.flush_others: Callable[[bool], Awaitable[None]] | None = None

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def dropped_events(self) -> int:
        """Events lost to a full buffer or to writes that kept failing."""
        return self._buffer.dropped_events

    # -- writing ----------------------------------------------------------------------

    async def start(self) -> None:
        self._buffer.start()
        if self._expiry_task is None:
            self._expiry_task = asyncio.create_task(
                self._expire_periodically(), name="lamina-log-expiry"
            )

    async def close(self) -> None:
        """Flush everything buffered and stop the store's tasks."""
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry_task
            self._expiry_task = None
        await self._buffer.close()

    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        """Buffer `events` ((timestamp ms, message) pairs); must be called on the loop.

        Never blocks. The group and stream are created on first write. Past
        `max_buffered_events` (the database is down or far behind) new events are
        dropped and counted, so a function printing without end cannot exhaust memory.
        """
        self._buffer.append(group, stream, events)

    async def flush(self) -> None:
        """Write everything appended before this call."""
        await self._buffer.flush()

    async def _flush_all(self) -> None:
        await self.flush()
        if self.flush_others is not None:
            await self.flush_others(False)

    def forget_streams(self) -> None:
        """Drop cached stream ids (another process deleted streams)."""
        self._buffer.forget_streams()

    async def _expire_periodically(self) -> None:
        while True:
            try:
                expired = await self.expire()
            except Exception:
                logger.exception("expiring log events failed")
            else:
                if expired:
                    logger.info("expired %d log events past their retention", expired)
            await asyncio.sleep(self._expiry_interval_s)

    async def expire(self) -> int:
        """Delete every event older than its group's retention; return how many."""
        total = 0
        while True:
            async with self._engine.begin() as conn:
                count = await expire_chunk(conn, self.now_ms())
            total += count
            if count < EXPIRY_CHUNK:
                return total

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
        await self._flush_all()  # or buffered events would re-create the group just deleted
        self._buffer.forget_streams()
        async with self._engine.begin() as conn:
            group_id = await find_group(conn, name)
            await conn.execute(delete(log_events).where(log_events.c.group_id == group_id))
            await conn.execute(delete(log_streams).where(log_streams.c.group_id == group_id))
            await conn.execute(delete(log_groups).where(log_groups.c.id == group_id))
        if self.flush_others is not None:
            await self.flush_others(True)

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

    async def set_retention(self, group: str, days: int | None) -> None:
        """Set (or, with None, remove) the group's retention in days."""
        if days is not None:
            check_retention(days)
        async with self._engine.begin() as conn:
            group_id = await find_group(conn, group)
            await conn.execute(
                log_groups.update().where(log_groups.c.id == group_id).values(retention_days=days)
            )

    async def delete_stream(self, group: str, stream: str) -> None:
        await self._flush_all()
        self._buffer.forget_streams()
        async with self._engine.begin() as conn:
            group_id, stream_id = await find_stream(conn, group, stream)
            await conn.execute(delete(log_events).where(log_events.c.stream_id == stream_id))
            await conn.execute(delete(log_streams).where(log_streams.c.id == stream_id))
            await log_catalog.recount_group(conn, group_id)
        if self.flush_others is not None:
            await self.flush_others(True)

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
        await self._flush_all()
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
        await self._flush_all()
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
        await self._flush_all()
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
