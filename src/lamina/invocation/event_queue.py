"""The durable queue of async invocations.

`enqueue` returns only after the event is committed, so Invoke's 202 means the event
survives a `kill -9`. Concurrent enqueues are group-committed: one writer task takes
every event waiting at that moment and commits them in one transaction, so
durability costs one fsync per batch, not per event.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, String, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()

events_table = Table(
    "async_events",
    metadata,
    Column("id", String, primary_key=True),
    Column("function", String, nullable=False),
    Column("qualifier", String, nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
)

BATCH_MAX = 512


@dataclass(frozen=True, slots=True)
class AsyncEvent:
    id: str  # also the invocation's request id, stable across retries
    function: str
    qualifier: str | None
    payload: bytes
    received_at: float
    attempts: int = 0
    next_attempt_at: float = 0.0


class EventQueue:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._incoming: asyncio.Queue[tuple[AsyncEvent, asyncio.Future[None]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_forever())

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def enqueue(self, event: AsyncEvent) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._incoming.put_nowait((event, done))
        await done

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._incoming.get()]
            while len(batch) < BATCH_MAX and not self._incoming.empty():
                batch.append(self._incoming.get_nowait())
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        events_table.insert(),
                        [
                            {
                                "id": e.id, "function": e.function, "qualifier": e.qualifier,
                                "payload": e.payload, "received_at": e.received_at,
                                "attempts": e.attempts, "next_attempt_at": e.next_attempt_at,
                            }
                            for e, _ in batch
                        ],
                    )  # fmt: skip
            except Exception as exc:  # the callers get the failure; nothing was acknowledged
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def pending(self) -> list[AsyncEvent]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(events_table).order_by(events_table.c.received_at))
            return [
                AsyncEvent(
                    r.id,
                    r.function,
                    r.qualifier,
                    r.payload,
                    r.received_at,
                    r.attempts,
                    r.next_attempt_at,
                )
                for r in rows
            ]

    async def reschedule(self, event: AsyncEvent) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                events_table.update()
                .where(events_table.c.id == event.id)
                .values(attempts=event.attempts, next_attempt_at=event.next_attempt_at)
            )

    async def remove(self, event_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(events_table).where(events_table.c.id == event_id))
