"""A write-behind buffer: items appended without waiting, written by a flusher task
in one transaction per batch.

Used where a request path must never wait on the database (function logs, the audit
trail). A burst gathers for `linger_s` into one commit; `flush` writes everything
appended before it (readers call it first, so they see what was appended before their
read); a batch that keeps failing is dropped after a few attempts and counted, and
past `max_buffered` new items are dropped and counted — never kept unbounded.

An item may stand for several (`size`): the log buffer keeps one item per
invocation's lines, so the invoke path builds one object rather than one per line,
while limits and batches still count lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
WRITE_ATTEMPTS = 3

logger = logging.getLogger(__name__)


class WriteBuffer(Generic[T]):
    def __init__(
        self,
        engine: AsyncEngine,
        write: Callable[[AsyncConnection, list[T]], Awaitable[None]],
        *,
        name: str,
        linger_s: float,
        max_buffered: int,
        batch_size: int = 5000,
        on_failure: Callable[[], None] | None = None,
        size: Callable[[T], int] | None = None,
    ) -> None:
        self._engine = engine
        self._write = write
        self._name = name
        self._linger_s = linger_s
        self._max_buffered = max_buffered
        self._batch_size = batch_size
        self._on_failure = on_failure
        self._size = size
        self._pending: deque[T] = deque()
        self._buffered = 0  # sum of the pending items' sizes
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()  # cuts a linger short at close
        # One writer at a time: the flusher and explicit flushes share it, so a flush
        # returns only after a batch the flusher already took is written too.
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failures = 0
        self.dropped = 0
        self._reported_drops = 0

    def __len__(self) -> int:
        return self._buffered

    def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name=f"lamina-{self._name}-flusher")
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

    def room(self) -> int:
        return max(self._max_buffered - self._buffered, 0)

    def extend(self, items: Sequence[T]) -> None:
        """Buffer `items` (never blocks); what does not fit is dropped and counted.

        With `size`, the caller trims an item to the room left before adding it.
        """
        if self._size is None:
            room = self.room()
            if len(items) > room:
                self.dropped += len(items) - room
                items = items[:room]
            added = len(items)
        else:
            added = sum(map(self._size, items))
        if items:
            self._pending.extend(items)
            self._buffered += added
            self._wake.set()

    def drop(self, count: int) -> None:
        """Count items refused before they were built (the buffer was full)."""
        self.dropped += count

    async def flush(self) -> None:
        """Write everything buffered before this call.

        Items appended while it writes are left to the flusher: a reader's flush must
        not be kept busy by a writer that never stops appending.
        """
        async with self._write_lock:
            remaining = len(self._pending)
            while remaining > 0 and self._pending:
                batch, weight = self._take(remaining)
                remaining -= len(batch)
                try:
                    async with self._engine.begin() as conn:
                        await self._write(conn, batch)
                except Exception:
                    if self._on_failure is not None:
                        self._on_failure()
                    self._failures += 1
                    if self._failures < WRITE_ATTEMPTS:
                        self._pending.extendleft(reversed(batch))
                        self._buffered += weight
                    else:
                        self._failures = 0
                        self.dropped += weight
                        logger.error("dropped %d %s after repeated write failures", weight, self._name)
                    raise
                self._failures = 0

    def _take(self, most: int) -> tuple[list[T], int]:
        """Up to `most` items from the front, stopping at a batch's worth of size."""
        pending, size = self._pending, self._size
        batch: list[T] = []
        weight = 0
        while pending and len(batch) < most and weight < self._batch_size:
            item = pending.popleft()
            batch.append(item)
            weight += 1 if size is None else size(item)
        self._buffered -= weight
        return batch, weight

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
                logger.exception("writing %s failed; retrying in 1 s", self._name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                self._wake.set()
            if self.dropped > self._reported_drops:
                # Once per batch, not per append: a flood must not become a log flood.
                logger.warning(
                    "%s buffer full: dropped %d (%d in all)",
                    self._name, self.dropped - self._reported_drops, self.dropped,
                )  # fmt: skip
                self._reported_drops = self.dropped
