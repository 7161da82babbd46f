"""Accounting off the request path: each call's usage record and its budget debit are
queued and written in batches, one transaction per batch (usage rows inserted, spend
rows added to)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.gateway.tables import Tables

BATCH = 500
CALL_LOG = "lamina.gateway.calls"


@dataclass(frozen=True, slots=True)
class UsageRecord:
    ts: float
    key_id: str
    key_name: str
    model: str
    provider: str
    upstream_model: str
    api: str  # "chat" | "messages" | "embeddings" | "prompt"
    status: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    latency_ms: float
    ttft_ms: float | None
    cache_hit: bool
    fallback: bool
    stream: bool


@dataclass(frozen=True, slots=True)
class Debit:
    key_id: str
    period: str
    cost_usd: float


class UsageWriter:
    def __init__(self, engine: AsyncEngine, tables: Tables, linger_s: float = 0.05) -> None:
        self._engine = engine
        self._linger_s = linger_s
        self._tables = tables
        self._queue: asyncio.Queue[UsageRecord | Debit] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._log = logging.getLogger(CALL_LOG)
        # Plain statements, compiled once and run with executemany: SQLAlchemy's
        # multi-row INSERT construct recompiles for every batch size (~4 ms a batch).
        columns = list(UsageRecord.__slots__)
        self._insert_usage = text(
            f"INSERT INTO {tables.usage.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join(':' + c for c in columns)})")
        # ON CONFLICT … DO UPDATE is spelled the same in SQLite and PostgreSQL.
        self._add_spend = text(
            f"INSERT INTO {tables.spend.name} (key_id, period, spent_usd) "
            "VALUES (:key_id, :period, :cost) ON CONFLICT (key_id, period) "
            f"DO UPDATE SET spent_usd = {tables.spend.name}.spent_usd + excluded.spent_usd")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-usage-writer")

    def record(self, item: UsageRecord | Debit) -> None:
        self._queue.put_nowait(item)

    async def drain(self) -> None:
        """Wait until everything recorded so far is committed."""
        if self._task is not None:
            await self._queue.join()

    async def close(self, timeout_s: float = 10.0) -> None:
        # A database that stays broken must not hold shutdown forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Linger a moment so a busy gateway writes many calls per transaction:
            # each commit costs far more than each row.
            deadline = asyncio.get_running_loop().time() + self._linger_s
            while len(batch) < BATCH:
                if self._queue.empty():
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                    except TimeoutError:
                        break
                else:
                    batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:  # a failed batch must not stop accounting for good
                await asyncio.sleep(0.5)
                for item in batch:
                    self._queue.put_nowait(item)
            for _ in batch:
                self._queue.task_done()

    async def _write(self, batch: list[UsageRecord | Debit]) -> None:
        records = [_row(i) for i in batch if isinstance(i, UsageRecord)]
        debits: dict[tuple[str, str], float] = {}
        for item in batch:
            if isinstance(item, Debit):
                row = (item.key_id, item.period)
                debits[row] = debits.get(row, 0.0) + item.cost_usd
        if self._log.isEnabledFor(logging.INFO):
            for item in batch:
                if isinstance(item, UsageRecord):
                    self._log.info(_log_line(item), extra={"gateway_call": asdict(item)})
        async with self._engine.begin() as conn:
            if records:
                await conn.execute(self._insert_usage, records)
            if debits:
                await conn.execute(self._add_spend, [
                    {"key_id": key_id, "period": period, "cost": cost}
                    for (key_id, period), cost in debits.items()])


def _row(r: UsageRecord) -> dict[str, Any]:
    # dataclasses.asdict deep-copies; these fields are all scalars.
    return {name: getattr(r, name) for name in UsageRecord.__slots__}


def _log_line(r: UsageRecord) -> str:
    ttft = f"{r.ttft_ms:.1f}" if r.ttft_ms is not None else "-"
    return (f"{r.api} key={r.key_name} model={r.model} provider={r.provider or '-'} "
            f"upstream_model={r.upstream_model or '-'} status={r.status} "
            f"tokens={r.prompt_tokens}+{r.completion_tokens} cached={r.cached_tokens} "
            f"cost_usd={r.cost_usd:.6f} latency_ms={r.latency_ms:.1f} ttft_ms={ttft} "
            f"cache={'hit' if r.cache_hit else 'miss'} fallback={str(r.fallback).lower()} "
            f"stream={str(r.stream).lower()}")
