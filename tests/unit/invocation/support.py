"""The clock and the observable queue the invocation tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.invocation.event_queue import AsyncEvent, EventQueue


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingQueue(EventQueue):
    """The real queue, telling the test when an event leaves it or is rescheduled."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.engine = engine
        self.removed: list[str] = []
        self.rescheduled: list[AsyncEvent] = []
        self._watchers: dict[str, list[Callable[[], None]]] = {}

    async def remove(self, event_id: str) -> None:
        await super().remove(event_id)
        self.removed.append(event_id)
        for wake in self._watchers.pop(event_id, []):
            wake()

    async def reschedule(self, event: AsyncEvent) -> None:
        await super().reschedule(event)
        self.rescheduled.append(event)

    async def gone(self, event_id: str) -> None:
        """Wait until `event_id` has been removed."""
        if event_id in self.removed:
            return
        done = asyncio.Event()
        self._watchers.setdefault(event_id, []).append(done.set)
        await asyncio.wait_for(done.wait(), 30)


def async_event(n: int, **changes: object) -> AsyncEvent:
    fields: dict[str, object] = {
        "id": f"event-{n:04d}",
        "function": "fn",
        "qualifier": None,
        "payload": b'{"n": %d}' % n,
        "received_at": 1_700_000_000.0 + n,
    }
    fields.update(changes)
    return AsyncEvent(**fields)  # type: ignore[arg-type]


OpenQueue = Callable[[], Awaitable[RecordingQueue]]
Rows = Callable[[], list[tuple[object, ...]]]
