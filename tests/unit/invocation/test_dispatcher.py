"""Dispatcher: retries with backoff, throttles until max age, drops, and replay on start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from tests.unit.invocation.support import (
    FakeClock,
    OpenQueue,
    RecordingQueue,
    Rows,
    async_event,
)

from lamina.functions.model import EventInvokeConfig
from lamina.invocation.dispatcher import Dispatcher, Outcome, Policy, Runner
from lamina.invocation.event_queue import AsyncEvent

BASE_S = 0.01


@dataclass
class ScriptedRunner:
    """Answers each attempt from a script (the last answer repeats); may advance the clock."""

    outcomes: list[Outcome]
    clock: FakeClock
    advance_s: float = 0.0
    calls: list[AsyncEvent] = field(default_factory=list)

    async def __call__(self, event: AsyncEvent) -> Outcome:
        self.calls.append(event)
        self.clock.now += self.advance_s
        index = min(len(self.calls), len(self.outcomes)) - 1
        return self.outcomes[index]


def policy(max_retries: int = 2, max_age_s: int = 21600) -> Policy:
    config = EventInvokeConfig(max_retries=max_retries, max_event_age_s=max_age_s)
    return lambda event: config


@pytest.fixture
async def dispatchers(
    queue: RecordingQueue, clock: FakeClock
) -> AsyncIterator[Callable[..., Dispatcher]]:
    made: list[Dispatcher] = []

    def make(run: Runner, rules: Policy | None = None, workers: int = 1) -> Dispatcher:
        dispatcher = Dispatcher(queue, run, rules or policy(), workers, BASE_S, clock)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        await dispatcher.close()


async def submit(queue: RecordingQueue, dispatcher: Dispatcher, event: AsyncEvent) -> None:
    """What Invoke does for InvocationType=Event: enqueue durably, then schedule."""
    await queue.enqueue(event)
    dispatcher.schedule(event)


async def test_success_removes_the_event(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher], rows: Rows
) -> None:
    run = ScriptedRunner([Outcome.SUCCESS], clock)
    dispatcher = dispatchers(run)
    await dispatcher.start()
    event = async_event(1, received_at=clock.now)
    await submit(queue, dispatcher, event)
    await queue.gone(event.id)
    assert [e.id for e in run.calls] == [event.id]
    assert queue.rescheduled == []
    assert rows() == []


@pytest.mark.parametrize("max_retries", [0, 1, 2])
async def test_function_errors_are_retried_max_retries_times_with_doubling_delays(
    queue: RecordingQueue,
    clock: FakeClock,
    dispatchers: Callable[..., Dispatcher],
    rows: Rows,
    max_retries: int,
) -> None:
    run = ScriptedRunner([Outcome.FUNCTION_ERROR], clock)
    dispatcher = dispatchers(run, policy(max_retries=max_retries))
    await dispatcher.start()
    event = async_event(1, received_at=clock.now)
    await submit(queue, dispatcher, event)
    await queue.gone(event.id)
    assert [e.attempts for e in run.calls] == list(range(max_retries + 1))
    assert [e.attempts for e in queue.rescheduled] == list(range(1, max_retries + 1))
    delays = [e.next_attempt_at - clock.now for e in queue.rescheduled]
    assert delays == pytest.approx([BASE_S * 2**i for i in range(max_retries)])
    assert rows() == []


async def test_a_retry_that_succeeds_stops_retrying(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher]
) -> None:
    run = ScriptedRunner([Outcome.FUNCTION_ERROR, Outcome.SUCCESS], clock)
    dispatcher = dispatchers(run, policy(max_retries=5))
    await dispatcher.start()
    event = async_event(1, received_at=clock.now)
    await submit(queue, dispatcher, event)
    await queue.gone(event.id)
    assert [e.attempts for e in run.calls] == [0, 1]


async def test_a_retry_is_on_disk_before_it_runs(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher], rows: Rows
) -> None:
    second_attempt = asyncio.Event()
    finish = asyncio.Event()

    async def run(event: AsyncEvent) -> Outcome:
        if event.attempts == 0:
            return Outcome.FUNCTION_ERROR
        second_attempt.set()
        await finish.wait()
        return Outcome.SUCCESS

    dispatcher = dispatchers(run)
    await dispatcher.start()
    event = async_event(1, received_at=clock.now)
    await submit(queue, dispatcher, event)
    await second_attempt.wait()
    # A crash now would replay the event as attempt 1, not from scratch.
    assert rows() == [(event.id, "fn", None, event.payload, clock.now, 1, clock.now + BASE_S)]
    finish.set()
    await queue.gone(event.id)


async def test_throttles_are_retried_until_the_event_is_too_old(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher], rows: Rows
) -> None:
    # Every attempt takes 100 "seconds"; the event may live 250: attempts at 0, 100, 200.
    run = ScriptedRunner([Outcome.THROTTLED], clock, advance_s=100)
    dispatcher = dispatchers(run, policy(max_retries=0, max_age_s=250))
    await dispatcher.start()
    event = async_event(1, received_at=clock.now)
    await submit(queue, dispatcher, event)
    await queue.gone(event.id)
    assert len(run.calls) == 3  # max_retries=0 does not limit throttles
    assert [e.attempts for e in run.calls] == [0, 0, 0]
    # Throttles do not back off further: each retry is one base delay after the attempt.
    assert [e.next_attempt_at - e.received_at for e in queue.rescheduled] == pytest.approx(
        [100 + BASE_S, 200 + BASE_S, 300 + BASE_S]
    )
    assert rows() == []


async def test_throttle_then_function_errors_counts_only_the_errors(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher]
) -> None:
    outcomes = [Outcome.THROTTLED, Outcome.THROTTLED, Outcome.FUNCTION_ERROR]
    run = ScriptedRunner(outcomes, clock)
    dispatcher = dispatchers(run, policy(max_retries=1))
    await dispatcher.start()
    event = async_event(1, received_at=clock.now)
    await submit(queue, dispatcher, event)
    await queue.gone(event.id)
    assert [e.attempts for e in run.calls] == [0, 0, 0, 1]


async def test_gone_function_drops_the_event(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher], rows: Rows
) -> None:
    run = ScriptedRunner([Outcome.GONE], clock)
    dispatcher = dispatchers(run, policy(max_retries=2))
    await dispatcher.start()
    event = async_event(1, received_at=clock.now)
    await submit(queue, dispatcher, event)
    await queue.gone(event.id)
    assert len(run.calls) == 1
    assert queue.rescheduled == []
    assert rows() == []


async def test_an_event_already_too_old_is_dropped_without_running(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher]
) -> None:
    run = ScriptedRunner([Outcome.SUCCESS], clock)
    dispatcher = dispatchers(run, policy(max_age_s=60))
    await dispatcher.start()
    event = async_event(1, received_at=clock.now - 61)
    await submit(queue, dispatcher, event)
    await queue.gone(event.id)
    assert run.calls == []


async def test_the_policy_is_asked_per_event(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher]
) -> None:
    run = ScriptedRunner([Outcome.FUNCTION_ERROR], clock)
    retries = {"once": 1, "never": 0}
    dispatcher = dispatchers(run, lambda e: EventInvokeConfig(max_retries=retries[e.function]))
    await dispatcher.start()
    once = async_event(1, function="once", received_at=clock.now)
    never = async_event(2, function="never", received_at=clock.now)
    await submit(queue, dispatcher, once)
    await submit(queue, dispatcher, never)
    await queue.gone(once.id)
    await queue.gone(never.id)
    assert sorted(e.function for e in run.calls) == ["never", "once", "once"]


async def test_start_replays_what_was_pending_before_a_restart(
    open_queue: OpenQueue, clock: FakeClock, rows: Rows
) -> None:
    before = await open_queue()
    due = async_event(1, received_at=clock.now)
    retry = async_event(2, received_at=clock.now, attempts=1, next_attempt_at=clock.now + BASE_S)
    await before.enqueue(due)
    await before.enqueue(retry)
    await before.close()

    after = await open_queue()
    run = ScriptedRunner([Outcome.SUCCESS], clock)
    dispatcher = Dispatcher(after, run, policy(), 1, BASE_S, clock)
    await dispatcher.start()
    try:
        await after.gone(due.id)
        await after.gone(retry.id)
    finally:
        await dispatcher.close()
    assert {(e.id, e.attempts) for e in run.calls} == {(due.id, 0), (retry.id, 1)}
    assert rows() == []


async def test_workers_run_events_concurrently(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher]
) -> None:
    workers = 4
    running: set[str] = set()
    all_in = asyncio.Event()

    async def run(event: AsyncEvent) -> Outcome:
        running.add(event.id)
        if len(running) == workers:
            all_in.set()
        await all_in.wait()  # only returns once every worker holds an event
        return Outcome.SUCCESS

    dispatcher = dispatchers(run, workers=workers)
    await dispatcher.start()
    events = [async_event(n, received_at=clock.now) for n in range(workers)]
    for event in events:
        await submit(queue, dispatcher, event)
    for event in events:
        await queue.gone(event.id)
    assert running == {e.id for e in events}


async def test_a_crashing_runner_does_not_kill_the_worker(
    queue: RecordingQueue, clock: FakeClock, dispatchers: Callable[..., Dispatcher], rows: Rows
) -> None:
    async def run(event: AsyncEvent) -> Outcome:
        if event.id == "event-0001":
            raise RuntimeError("bug in the runner")
        return Outcome.SUCCESS

    dispatcher = dispatchers(run, workers=1)
    await dispatcher.start()
    broken, fine = async_event(1, received_at=clock.now), async_event(2, received_at=clock.now)
    await submit(queue, dispatcher, broken)
    await submit(queue, dispatcher, fine)
    await queue.gone(fine.id)  # the same single worker went on to the next event
    assert [r[0] for r in rows()] == [broken.id]  # kept on disk for a later attempt
