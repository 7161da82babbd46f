"""LogStore against a real temporary SQLite database, with a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lamina.errors import ClientError
from lamina.storage.database import open_database, sqlite_url
from lamina.telemetry import log_buffer, log_writes
from lamina.telemetry.log_tables import log_events
from lamina.telemetry.log_writes import MAX_MESSAGE_BYTES
from lamina.telemetry.logstore import LogStore

GROUP = "/aws/lambda/fn"
STREAM = "2026/11/27/[$LATEST]" + "a" * 32


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogStore]:
    engine = await open_database(sqlite_url(tmp_path / "logs.db"), LogStore.metadata)
    log_store = LogStore(engine, FakeClock(), linger_s=0.01)
    await log_store.start()
    yield log_store
    await log_store.close()
    await engine.dispose()


async def test_append_creates_group_and_stream_and_is_readable(store: LogStore) -> None:
    store.append(GROUP, STREAM, [(1000, "START\n"), (1001, "hello\n"), (1002, "END\n")])
    events, _fwd, _bwd = await store.get_events(GROUP, STREAM, start_from_head=True)
    assert [e.message for e in events] == ["START\n", "hello\n", "END\n"]
    assert events[0].ingestion_ms == 1_800_000_000_000
    assert len(events[0].event_id) == 56
    groups, token = await store.describe_groups(prefix="/aws/lambda/")
    assert [g.name for g in groups] == [GROUP] and token is None
    streams, _ = await store.describe_streams(GROUP)
    assert streams[0].name == STREAM
    assert (streams[0].first_event_ms, streams[0].last_event_ms) == (1000, 1002)
    assert streams[0].stored_bytes == len("START\nhello\nEND\n")


async def test_flusher_writes_without_an_explicit_flush(store: LogStore) -> None:
    store.append(GROUP, STREAM, [(1, "x")])
    count = select(func.count()).select_from(log_events)
    written = 0
    # The flusher writes within linger + one transaction; the bound here is generous
    # because a loaded test machine is slow, not because the store is.
    for _ in range(200):
        await asyncio.sleep(0.01)
        async with store._engine.connect() as conn:
            written = await conn.scalar(count) or 0
        if written:
            break
    assert written == 1 and not store._buffer


async def test_close_flushes_what_is_buffered(tmp_path: Path) -> None:
    engine = await open_database(sqlite_url(tmp_path / "l.db"), LogStore.metadata)
    store = LogStore(engine, FakeClock(), linger_s=10)
    await store.start()
    store.append(GROUP, STREAM, [(1, "kept")])
    await store.close()
    reopened = LogStore(engine, FakeClock())
    events, *_ = await reopened.get_events(GROUP, STREAM)
    assert [e.message for e in events] == ["kept"]
    await engine.dispose()


async def test_buffer_is_bounded_and_long_lines_are_clipped(tmp_path: Path) -> None:
    engine = await open_database(sqlite_url(tmp_path / "l.db"), LogStore.metadata)
    store = LogStore(engine, FakeClock(), max_buffered_events=3)
    store.append(GROUP, STREAM, [(i, "m") for i in range(5)])
    assert store.dropped_events == 2
    await store.flush()
    store.append(GROUP, "big", [(1, "é" * MAX_MESSAGE_BYTES)])
    await store.flush()
    events, *_ = await store.get_events(GROUP, "big")
    assert len(events[0].message.encode()) <= MAX_MESSAGE_BYTES
    await engine.dispose()


async def test_get_events_pages_forward_and_backward(store: LogStore) -> None:
    store.append(GROUP, STREAM, [(t, f"e{t}") for t in range(10)])
    tail, fwd, bwd = await store.get_events(GROUP, STREAM, limit=3)
    assert [e.message for e in tail] == ["e7", "e8", "e9"]
    older, _, _ = await store.get_events(GROUP, STREAM, limit=3, token=bwd)
    assert [e.message for e in older] == ["e4", "e5", "e6"]
    # At the end of the stream the forward token comes back unchanged.
    none, fwd_again, _ = await store.get_events(GROUP, STREAM, token=fwd)
    assert none == [] and fwd_again == fwd
    store.append(GROUP, STREAM, [(10, "e10")])
    newer, _, _ = await store.get_events(GROUP, STREAM, token=fwd)
    assert [e.message for e in newer] == ["e10"]
    head, _, _ = await store.get_events(GROUP, STREAM, start_from_head=True, limit=2)
    assert [e.message for e in head] == ["e0", "e1"]
    window, _, _ = await store.get_events(GROUP, STREAM, start_ms=3, end_ms=5, start_from_head=True)
    assert [e.message for e in window] == ["e3", "e4"]
    with pytest.raises(ClientError) as bad:
        await store.get_events(GROUP, STREAM, token="f/garbage!")
    assert bad.value.code == "InvalidParameterException"


async def test_filter_events_across_streams_with_pattern_and_pages(store: LogStore) -> None:
    store.append(GROUP, "s1", [(1, "ERROR one"), (3, "INFO three"), (5, "ERROR five")])
    store.append(GROUP, "s2", [(2, "error two"), (4, "ERROR four Healthcheck")])
    events, token = await store.filter_events(GROUP, filter_pattern="ERROR -Healthcheck")
    assert [(e.stream, e.message) for e in events] == [("s1", "ERROR one"), ("s1", "ERROR five")]
    assert token is None
    page, token = await store.filter_events(GROUP, limit=2)
    assert [e.timestamp_ms for e in page] == [1, 2]
    rest, token2 = await store.filter_events(GROUP, limit=10, token=token)
    assert [e.timestamp_ms for e in rest] == [3, 4, 5] and token2 is None
    only_s2, _ = await store.filter_events(GROUP, stream_names=["s2"])
    assert {e.stream for e in only_s2} == {"s2"}
    prefixed, _ = await store.filter_events(GROUP, stream_prefix="s1", start_ms=2, end_ms=5)
    assert [e.timestamp_ms for e in prefixed] == [3]
    newest_first, _ = await store.filter_events(GROUP, start_from_head=False, limit=2)
    assert [e.timestamp_ms for e in newest_first] == [5, 4]
    with pytest.raises(ClientError):
        await store.filter_events(GROUP, stream_names=["s1"], stream_prefix="s")


async def test_groups_create_delete_and_errors(store: LogStore) -> None:
    await store.create_group("app")
    with pytest.raises(ClientError) as dup:
        await store.create_group("app")
    assert dup.value.code == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as missing:
        await store.create_stream("nope", "s")
    assert missing.value.code == "ResourceNotFoundException" and missing.value.status == 400
    assert missing.value.message == "The specified log group does not exist."
    await store.create_stream("app", "s")
    with pytest.raises(ClientError) as bad_name:
        await store.create_group("bad name!")
    assert bad_name.value.code == "InvalidParameterException"
    store.append("app", "s", [(1, "x")])
    await store.delete_group("app")
    groups, _ = await store.describe_groups()
    assert groups == []
    with pytest.raises(ClientError):
        await store.delete_group("app")


async def test_describe_pagination_and_ordering(store: LogStore) -> None:
    for name in ["g/a", "g/b", "g/c", "other"]:
        await store.create_group(name)
    first, token = await store.describe_groups(prefix="g/", limit=2)
    assert [g.name for g in first] == ["g/a", "g/b"] and token
    second, token = await store.describe_groups(prefix="g/", limit=2, token=token)
    assert [g.name for g in second] == ["g/c"] and token is None
    matched, _ = await store.describe_groups(pattern="b")
    assert [g.name for g in matched] == ["g/b"]
    store.append("g/a", "old", [(10, "x")])
    store.append("g/a", "new", [(20, "x")])
    store.append("g/a", "mid", [(15, "x")])
    by_time, token = await store.describe_streams(
        "g/a", order_by="LastEventTime", descending=True, limit=2
    )
    assert [s.name for s in by_time] == ["new", "mid"]
    rest, token = await store.describe_streams(
        "g/a", order_by="LastEventTime", descending=True, limit=2, token=token
    )
    assert [s.name for s in rest] == ["old"] and token is None
    by_name, _ = await store.describe_streams("g/a", prefix="m")
    assert [s.name for s in by_name] == ["mid"]
    with pytest.raises(ClientError):
        await store.describe_streams("g/a", prefix="m", order_by="LastEventTime")


async def test_put_events_requires_an_existing_stream(store: LogStore) -> None:
    with pytest.raises(ClientError) as missing:
        await store.put_events("app", "s", [(1, "x")])
    assert missing.value.message == "The specified log group does not exist."
    await store.create_group("app")
    with pytest.raises(ClientError) as no_stream:
        await store.put_events("app", "s", [(1, "x")])
    assert no_stream.value.message == "The specified log stream does not exist."
    await store.create_stream("app", "s")
    await store.put_events("app", "s", [(1, "x"), (2, "y")])
    events, *_ = await store.get_events("app", "s", start_from_head=True)
    assert [e.message for e in events] == ["x", "y"]


async def test_a_failed_write_is_retried_then_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await open_database(sqlite_url(tmp_path / "l.db"), LogStore.metadata)
    store = LogStore(engine, FakeClock())
    real = log_buffer.write_batch
    failures = iter([True, False])

    async def flaky(*args: object) -> None:
        if next(failures, True):
            raise OSError("disk full")
        await real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(log_buffer, "write_batch", flaky)
    store.append(GROUP, STREAM, [(1, "survives one failure")])
    with pytest.raises(OSError):
        await store.flush()
    await store.flush()  # the batch was kept and goes in now
    store.append(GROUP, STREAM, [(2, "never written")])
    for _ in range(3):
        with pytest.raises(OSError):
            await store.flush()
    assert store.dropped_events == 1 and not store._buffer
    monkeypatch.setattr(log_buffer, "write_batch", real)
    events, *_ = await store.get_events(GROUP, STREAM)
    assert [e.message for e in events] == ["survives one failure"]
    await engine.dispose()


async def test_stream_id_cache_survives_deletes_here_and_elsewhere(store: LogStore) -> None:
    store.append(GROUP, STREAM, [(1, "first")])
    await store.flush()
    await store.delete_group(GROUP)
    store.append(GROUP, STREAM, [(2, "after delete")])
    events, *_ = await store.get_events(GROUP, STREAM)
    assert [e.message for e in events] == ["after delete"]
    # Another node deletes the group behind this store's back: the cached ids are stale,
    # the write fails on the foreign key, the cache is dropped and the retry succeeds.
    async with store._engine.begin() as conn:
        for table in ("log_events", "log_streams", "log_groups"):
            await conn.exec_driver_sql(f"DELETE FROM {table}")
    store.append(GROUP, STREAM, [(3, "after a remote delete")])
    with contextlib.suppress(Exception):
        await store.flush()
    events, *_ = await store.get_events(GROUP, STREAM)
    assert [e.message for e in events] == ["after a remote delete"]


async def test_retention_expires_old_events(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = await open_database(sqlite_url(tmp_path / "l.db"), LogStore.metadata)
    store = LogStore(engine, clock)
    day = 86_400_000
    now = store.now_ms()
    store.append(GROUP, STREAM, [(now - 10 * day, "old"), (now - 2 * day, "recent"), (now, "new")])
    store.append(GROUP, "other", [(now - 10 * day, "old too")])
    store.append("/kept/forever", "s", [(now - 1000 * day, "ancient")])
    await store.flush()
    with pytest.raises(ClientError) as refused:
        await store.set_retention(GROUP, 4)
    assert refused.value.code == "InvalidParameterException"
    await store.set_retention(GROUP, 7)
    assert await store.expire() == 2
    events, _ = await store.filter_events(GROUP)
    assert [e.message for e in events] == ["recent", "new"]
    streams, _ = await store.describe_streams(GROUP)
    by_name = {s.name: s for s in streams}
    assert by_name[STREAM].first_event_ms == now - 2 * day
    assert by_name[STREAM].stored_bytes == len("recentnew")
    assert by_name["other"].stored_bytes == 0
    groups, _ = await store.describe_groups(prefix=GROUP)
    assert groups[0].retention_days == 7 and groups[0].stored_bytes == len("recentnew")
    kept, _ = await store.filter_events("/kept/forever")
    assert [e.message for e in kept] == ["ancient"]
    await store.set_retention(GROUP, None)
    groups, _ = await store.describe_groups(prefix=GROUP)
    assert groups[0].retention_days is None
    await engine.dispose()


async def test_unstorable_text_is_repaired_not_fatal(store: LogStore) -> None:
    store.append(GROUP, STREAM, [(1, "bad \udcff byte"), (2, "nul \x00 char"), (3, "fine")])
    events, *_ = await store.get_events(GROUP, STREAM, start_from_head=True)
    assert [e.message for e in events] == ["bad ? byte", "nul \ufffd char", "fine"]


async def test_a_batch_past_one_insert_is_written_in_chunks_in_order(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_writes, "CHUNK_ROWS", 4)  # 3 invocations of 3 lines: 3 INSERTs
    for n in range(3):
        store.append(GROUP, STREAM, [(10 * n + i, f"{n}.{i}") for i in range(3)])
    events, _fwd, _bwd = await store.get_events(GROUP, STREAM, start_from_head=True)
    assert [e.message for e in events] == [f"{n}.{i}" for n in range(3) for i in range(3)]
    streams, _ = await store.describe_streams(GROUP)
    assert (streams[0].first_event_ms, streams[0].last_event_ms) == (0, 22)
    assert streams[0].stored_bytes == 9 * 3


def test_inserts_number_their_parameters_in_the_drivers_style() -> None:
    columns = "(group_id, stream_id, timestamp_ms, ingestion_ms, message)"
    assert log_writes._driver_insert("?", 2).endswith(
        f"{columns} VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)"
    )
    assert log_writes._driver_insert("${}", 2).endswith(
        f"{columns} VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10)"
    )
