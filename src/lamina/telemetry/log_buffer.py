"""The invoke path's side of the log store: an in-memory buffer and its flusher.

`append` only buffers: the invoke path must never wait on the database. The flusher
task writes what accumulated in one transaction per batch, `linger_s` after the first
event of a burst, so many invocations' lines share one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.telemetry.log_writes import PendingEvent, StreamIds, clip, write_batch

logger = logging.getLogger(__name__)

BATCH_EVENTS = 5000
WRITE_ATTEMPTS = 3


class LogBuffer:
    def __init__(
        self,
        engine: AsyncEngine,
        now_ms: Callable[[], int],
        linger_s: float,
        max_buffered_events: int,
    ) -> None:
        self._engine = engine
        self._now_ms = now_ms
        self._linger_s = linger_s
        self._max_buffered = max_buffered_events
        self._pending: deque[PendingEvent] = deque()
        self._wake = asyncio.Event()
        # One writer at a time: the flusher and explicit flushes share it, so a flush
        # returns only after a batch the flusher already took is written too.
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stop = asyncio.Event()  # cuts a linger short at close
        self._failures = 0
        self.dropped_events = 0
        self._reported_drops = 0
        # Ids of streams written to before. Entries are added inside a write's
        # transaction, so the cache is dropped whenever a write fails (a rolled-back
        # stream insert) and whenever groups or streams are deleted (`forget_streams`).
        self._stream_ids: StreamIds = {}

    def __len__(self) -> int:
        return len(self._pending)

    def forget_streams(self) -> None:
        self._stream_ids.clear()

    def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="lamina-log-flusher")
        if self._pending:
            self._wake.set()

    async def close(self) -> None:
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task
        await self.flush()

    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        room = self._max_buffered - len(self._pending)
        if len(events) > room:
            self.dropped_events += len(events) - max(room, 0)
            events = events[: max(room, 0)]
        if not events:
            return
        ingested = self._now_ms()
        self._pending.extend(
            PendingEvent(group, stream, ts, clip(message), ingested) for ts, message in events
        )
        self._wake.set()

    async def flush(self) -> None:
        """Write everything buffered before this call.

        Events appended while it writes are left to the flusher: a reader's flush must
        not be kept busy by a function that never stops printing.
        """
        async with self._write_lock:
            remaining = len(self._pending)
            while remaining > 0 and self._pending:
                size = min(len(self._pending), remaining, BATCH_EVENTS)
                remaining -= size
                batch = [self._pending.popleft() for _ in range(size)]
                try:
                    async with self._engine.begin() as conn:
                        await write_batch(conn, batch, self._now_ms(), self._stream_ids)
                except Exception:
                    self._stream_ids.clear()
                    self._failures += 1
                    if self._failures < WRITE_ATTEMPTS:
                        self._pending.extendleft(reversed(batch))
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
            # Let a burst gather into one batch, unless the buffer is closing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._linger_s)
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
