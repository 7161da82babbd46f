"""EventQueue: durable before enqueue returns, group-committed, readable after restart."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError
from tests.unit.invocation.support import OpenQueue, RecordingQueue, Rows, async_event


async def test_enqueue_returns_once_the_event_is_on_disk(queue: RecordingQueue, rows: Rows) -> None:
    await queue.enqueue(async_event(1, qualifier="live"))
    assert rows() == [
        ("event-0001", "fn", "live", b'{"n": 1}', 1_700_000_001.0, 0, 0.0),
    ]


async def test_concurrent_enqueues_are_group_committed(queue: RecordingQueue, rows: Rows) -> None:
    commits: list[object] = []
    sa_event.listen(queue.engine.sync_engine, "commit", commits.append)
    events = [async_event(n) for n in range(300)]
    await asyncio.gather(*(queue.enqueue(e) for e in events))
    stored = rows()
    assert [r[0] for r in stored] == [e.id for e in events]  # every one durable
    # One writer took all that was waiting: far fewer transactions than events.
    assert 1 <= len(commits) <= 3


async def test_a_failed_batch_fails_its_callers_and_the_writer_goes_on(
    queue: RecordingQueue, rows: Rows
) -> None:
    await queue.enqueue(async_event(1))
    with pytest.raises(IntegrityError):
        await queue.enqueue(async_event(1))  # same id: the insert fails
    # Nothing in a failed batch is acknowledged, so nothing from it may be on disk.
    results = await asyncio.gather(
        queue.enqueue(async_event(2)), queue.enqueue(async_event(2)), return_exceptions=True
    )
    assert all(isinstance(r, IntegrityError) for r in results)
    await queue.enqueue(async_event(3))
    assert [r[0] for r in rows()] == ["event-0001", "event-0003"]


async def test_pending_after_a_restart(open_queue: OpenQueue) -> None:
    before = await open_queue()
    events = [async_event(n, qualifier=str(n)) for n in (3, 1, 2)]
    for e in events:
        await before.enqueue(e)
    retried = async_event(2, qualifier="2", attempts=1, next_attempt_at=1_700_000_100.5)
    await before.reschedule(retried)
    await before.close()

    after = await open_queue()
    pending = await after.pending()
    assert pending == [async_event(1, qualifier="1"), retried, async_event(3, qualifier="3")]


async def test_remove_deletes_only_that_event(queue: RecordingQueue, rows: Rows) -> None:
    for n in range(3):
        await queue.enqueue(async_event(n))
    await queue.remove("event-0001")
    await queue.remove("no-such-event")
    assert [r[0] for r in rows()] == ["event-0000", "event-0002"]
    assert [e.id for e in await queue.pending()] == ["event-0000", "event-0002"]


async def test_close_without_start_is_fine(
    open_queue: OpenQueue,
) -> None:
    queue = await open_queue()
    await queue.close()
    await queue.close()
