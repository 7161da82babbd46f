"""The accounting writer: every record observed once (a retried batch is not observed
again), bodies stored beside their own usage rows, debits summed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from lamina.gateway import usage as usage_module
from lamina.gateway.config import BodyLogConfig
from lamina.gateway.tables import gateway_tables
from lamina.gateway.usage import Debit, Exchange, UsageRecord, UsageWriter
from lamina.storage.database import open_database, sqlite_url

RECORD = UsageRecord(
    ts=1.0, key_id="k", key_name="app", model="fast", provider="p", upstream_model="m",
    api="chat", status=200, prompt_tokens=3, completion_tokens=4, cached_tokens=0,
    cost_usd=0.5, latency_ms=10.0, ttft_ms=None, cache_hit=False, fallback=False,
    stream=False,
)  # fmt: skip


class Seen:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self.closed = False

    def observe(self, records: Sequence[UsageRecord]) -> None:
        self.records.extend(records)

    async def close(self) -> None:
        self.closed = True


async def test_a_failed_batch_is_written_again_but_observed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_module, "RETRY_S", 0.01)
    tables = gateway_tables()
    engine = await open_database(sqlite_url(tmp_path / "g.db"), tables.metadata)
    seen = Seen()
    writer = UsageWriter(engine, tables, linger_s=0.01, observers=[seen])
    real_write, failures = writer._write, [1]

    async def flaky(rows: object) -> None:
        if failures:
            failures.pop()
            raise OSError("database is gone for a moment")
        await real_write(rows)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_write", flaky)
    writer.start()
    bodies = BodyLogConfig(redact=("user",))
    logged = replace(
        RECORD,
        ts=2.0,
        exchange=Exchange(
            request={"model": "fast", "user": "alice", "api_key": "x"},
            response={"id": "r", "choices": []},
            provider=None,
            error=None,
            bodies=bodies,
        ),
    )
    traced = replace(
        RECORD,
        ts=3.0,
        exchange=Exchange(
            request={"model": "fast"}, response=None, provider=None, error=None, bodies=None
        ),
    )
    for item in (RECORD, logged, traced, Debit("k", "total", 0.5), Debit("k", "total", 0.25)):
        writer.record(item)
    await writer.drain()
    async with engine.connect() as conn:
        usage = (await conn.execute(select(tables.usage).order_by(tables.usage.c.ts))).all()
        stored = (await conn.execute(select(tables.bodies))).all()
        spend = (await conn.execute(select(tables.spend))).all()
    await writer.close()
    await engine.dispose()

    assert failures == []  # the first write did fail
    assert [r.ts for r in seen.records] == [1.0, 2.0, 3.0]  # once each, not again
    assert seen.closed
    assert [row.ts for row in usage] == [1.0, 2.0, 3.0]
    (body,) = stored
    assert body.usage_id == usage[1].id  # beside its own call's row
    assert body.request == '{"model":"fast","user":"[REDACTED]","api_key":"[REDACTED]"}'
    assert body.response == '{"id":"r","choices":[]}'
    assert [(row.key_id, row.period, row.spent_usd) for row in spend] == [("k", "total", 0.75)]


async def test_a_drain_does_not_wait_out_the_linger(tmp_path: Path) -> None:
    # Batches linger long (a lightly loaded gateway would otherwise commit every other
    # call); reports drain first and must not pay for it.
    tables = gateway_tables()
    engine = await open_database(sqlite_url(tmp_path / "g.db"), tables.metadata)
    writer = UsageWriter(engine, tables, linger_s=30.0)
    writer.start()
    try:
        writer.record(RECORD)
        writer.record(Debit("k", "total", 0.5))
        async with asyncio.timeout(5):
            await writer.drain()
        async with engine.connect() as conn:
            rows = (await conn.execute(select(tables.usage))).all()
            spent = (await conn.execute(select(tables.spend.c.spent_usd))).scalars().all()
        assert len(rows) == 1 and spent == [0.5]
    finally:
        await writer.close()
        await engine.dispose()
