"""The invoke path's side of the log store: log events in a write-behind buffer.

`append` only buffers: the invoke path must never wait on the database. The buffer's
flusher writes what accumulated in one transaction per batch, `linger_s` after the
first event of a burst, so many invocations' lines share one commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lamina.storage.write_buffer import WriteBuffer
from lamina.telemetry.log_writes import PendingLines, StreamIds, write_batch

BATCH_EVENTS = 5000


def _line_count(pending: PendingLines) -> int:
    return len(pending.events)


class LogBuffer:
    def __init__(
        self,
        engine: AsyncEngine,
        now_ms: Callable[[], int],
        linger_s: float,
        max_buffered_events: int,
    ) -> None:
        self._now_ms = now_ms
        # Ids of streams written to before. Entries are added inside a write's
        # transaction, so the cache is dropped whenever a write fails (a rolled-back
        # stream insert) and whenever groups or streams are deleted (`forget_streams`).
        self._stream_ids: StreamIds = {}
        self._buffer: WriteBuffer[PendingLines] = WriteBuffer(
            engine,
            self._write,
            name="log events",
            linger_s=linger_s,
            max_buffered=max_buffered_events,
            batch_size=BATCH_EVENTS,
            on_failure=self._stream_ids.clear,
            size=_line_count,
        )

    async def _write(self, conn: AsyncConnection, batch: list[PendingLines]) -> None:
        await write_batch(conn, batch, self._now_ms(), self._stream_ids)

    def __len__(self) -> int:
        return len(self._buffer)

    @property
    def dropped_events(self) -> int:
        return self._buffer.dropped

    def forget_streams(self) -> None:
        self._stream_ids.clear()

    def start(self) -> None:
        self._buffer.start()

    async def close(self) -> None:
        await self._buffer.close()

    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        room = self._buffer.room()
        if len(events) > room:
            self._buffer.drop(len(events) - room)
            events = events[:room]
        if not events:
            return
        self._buffer.extend((PendingLines(group, stream, self._now_ms(), events),))

    async def flush(self) -> None:
        await self._buffer.flush()
