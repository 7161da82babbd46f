"""Drains the durable event queue through the Invoker, retrying with backoff.

Each event is removed from the queue only after its last attempt (success, retries
used up, or too old), so a crash at any point replays it after restart: async
invocation is at-least-once, as in Lambda. Function errors are retried
`MaximumRetryAttempts` times (default 2) with doubling delays; throttles are
retried until the event's maximum age.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable

from lamina.functions.model import EventInvokeConfig
from lamina.invocation.event_queue import AsyncEvent, EventQueue

log = logging.getLogger("lamina.async")


class Outcome(enum.Enum):
    SUCCESS = "success"
    FUNCTION_ERROR = "function_error"  # counts against MaximumRetryAttempts
    THROTTLED = "throttled"  # retried until MaximumEventAgeInSeconds
    GONE = "gone"  # the function or qualifier no longer exists: drop


Runner = Callable[[AsyncEvent], Awaitable[Outcome]]
Policy = Callable[[AsyncEvent], EventInvokeConfig]


class Dispatcher:
    def __init__(
        self,
        queue: EventQueue,
        run: Runner,
        policy: Policy,
        workers: int,
        retry_base_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._run = run
        self._policy = policy
        self._workers = workers
        self._retry_base_s = retry_base_s
        self._clock = clock
        self._ready: asyncio.Queue[AsyncEvent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    async def start(self) -> None:
        for event in await self._queue.pending():
            self.schedule(event)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work()) for _ in range(self._workers)]

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def schedule(self, event: AsyncEvent) -> None:
        delay = event.next_attempt_at - self._clock()
        if delay <= 0:
            self._ready.put_nowait(event)
            return
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(timer)
            self._ready.put_nowait(event)

        timer = loop.call_later(delay, fire)
        self._timers.add(timer)

    async def _work(self) -> None:
        while True:
            event = await self._ready.get()
            try:
                await self._attempt(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # never lose the worker; the event stays queued on disk
                log.exception("async event %s failed unexpectedly; retrying later", event.id)
                self.schedule(dataclasses.replace(event, next_attempt_at=self._clock() + 5))

    async def _attempt(self, event: AsyncEvent) -> None:
        policy = self._policy(event)
        if self._clock() - event.received_at > policy.max_event_age_s:
            log.warning(
                "async event %s for %s dropped: older than %ss",
                event.id,
                event.function,
                policy.max_event_age_s,
            )
            await self._queue.remove(event.id)
            return
        outcome = await self._run(event)
        attempts = event.attempts + (1 if outcome is Outcome.FUNCTION_ERROR else 0)
        if outcome in (Outcome.SUCCESS, Outcome.GONE) or attempts > policy.max_retries:
            if outcome is Outcome.FUNCTION_ERROR:
                log.warning(
                    "async event %s for %s failed after %d attempts",
                    event.id,
                    event.function,
                    attempts,
                )
            await self._queue.remove(event.id)
            return
        delay = self._retry_base_s * (2 ** max(0, attempts - 1))
        retry = dataclasses.replace(event, attempts=attempts, next_attempt_at=self._clock() + delay)
        await self._queue.reschedule(retry)
        self.schedule(retry)
