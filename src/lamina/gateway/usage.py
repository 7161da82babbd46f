"""Accounting off the request path: each call's record and budget debit are queued
and handled in batches by one task:

    queue → batch (linger ≤ 500 ms — cut short by drain — ≤ 500 items)
          → log lines, observers (Prometheus metrics, OpenTelemetry spans)   once
          → rows: usage, redacted bodies, summed debits                      once
          → one transaction (retried whole, never observed twice)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.gateway.bodies import logged_body
from lamina.gateway.config import BodyLogConfig, ProviderConfig
from lamina.gateway.tables import Tables

BATCH = 500
CALL_LOG = "lamina.gateway.calls"
RETRY_S = 0.5
# A drain cuts the linger short within this long.
DRAIN_CHECK_S = 0.02
JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Exchange:
    """What a call's span and body log need beyond its usage row. Attached only when
    one of them is on; `request` and `response` are the live dicts of the call, read
    later by the writer and never changed."""

    request: JSON
    response: JSON | None
    provider: ProviderConfig | None  # the deployment that answered
    error: str | None  # a low-cardinality error name (OpenTelemetry's error.type)
    bodies: BodyLogConfig | None  # None: the model's bodies are not logged


@dataclass(frozen=True, slots=True)
class UsageRecord:
    ts: float  # wall clock at the end of the call
    key_id: str
    key_name: str
    model: str
    provider: str
    upstream_model: str
    api: str  # "chat" | "messages" | "responses" | "prompt" | "embeddings"
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
    exchange: Exchange | None = None  # not a column


COLUMNS = tuple(f.name for f in fields(UsageRecord) if f.name != "exchange")


@dataclass(frozen=True, slots=True)
class Debit:
    key_id: str
    period: str
    cost_usd: float


class Observer(Protocol):
    """Sees every call record once, in batches, in the writer's task."""

    def observe(self, records: Sequence[UsageRecord]) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Rows:
    """A batch made ready for SQL; a failed write queues it again whole."""

    usage: list[JSON] = field(default_factory=list)
    with_bodies: list[tuple[JSON, JSON]] = field(default_factory=list)  # usage, body
    debits: dict[tuple[str, str], float] = field(default_factory=dict)

    def add(self, other: _Rows) -> None:
        self.usage += other.usage
        self.with_bodies += other.with_bodies
        for row, cost in other.debits.items():
            self.debits[row] = self.debits.get(row, 0.0) + cost


class UsageWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        tables: Tables,
        # Long enough that a lightly loaded gateway (a few calls a second, streams)
        # does not pay a transaction, its thread hops and GIL hand-offs every other call
        # (~1.5 ms of CPU per streamed call at 50 ms); drain() does not wait it out.
        linger_s: float = 0.5,
        observers: Sequence[Observer] = (),
    ) -> None:
        self._engine = engine
        self._linger_s = linger_s
        self._tables = tables
        self._observers = tuple(observers)
        self._queue: asyncio.Queue[UsageRecord | Debit | _Rows] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._draining = 0  # drains waiting: lingering stops
        self._calls = logging.getLogger(CALL_LOG)
        self._log = logging.getLogger("lamina.gateway")
        # Plain statements, compiled once and run with executemany: SQLAlchemy's
        # multi-row INSERT construct recompiles for every batch size (~4 ms a batch).
        self._insert_usage = text(
            f"INSERT INTO {tables.usage.name} ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in COLUMNS)})"
        )
        # Rows with bodies need their ids back; only calls that log bodies pay for it.
        self._insert_returning = insert(tables.usage).returning(
            tables.usage.c.id, sort_by_parameter_order=True
        )
        # ON CONFLICT … DO UPDATE is spelled the same in SQLite and PostgreSQL.
        self._add_spend = text(
            f"INSERT INTO {tables.spend.name} (key_id, period, spent_usd) "
            "VALUES (:key_id, :period, :cost) ON CONFLICT (key_id, period) "
            f"DO UPDATE SET spent_usd = {tables.spend.name}.spent_usd + excluded.spent_usd"
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-usage-writer")

    def record(self, item: UsageRecord | Debit) -> None:
        self._queue.put_nowait(item)

    async def drain(self) -> None:
        """Wait until everything recorded so far is committed (and observed)."""
        if self._task is not None:
            self._draining += 1
            try:
                await self._queue.join()
            finally:
                self._draining -= 1

    async def close(self, timeout_s: float = 10.0) -> None:
        # A database that stays broken must not hold shutdown forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for observer in self._observers:
            await observer.close()  # after the last batch: spans in flight are flushed

    async def _run(self) -> None:
        while True:
            batch = await self._take()
            rows = self._prepare(batch)
            try:
                await self._write(rows)
            except Exception:  # a failed batch must not stop accounting for good
                self._log.warning("gateway usage batch not written; retrying", exc_info=True)
                await asyncio.sleep(RETRY_S)
                self._queue.put_nowait(rows)
            for _ in batch:
                self._queue.task_done()

    async def _take(self) -> list[UsageRecord | Debit | _Rows]:
        batch = [await self._queue.get()]
        # Linger a moment so a busy gateway writes many calls per transaction:
        # each commit costs far more than each row.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._linger_s
        while len(batch) < BATCH:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0 or self._draining:
                    break
                try:
                    batch.append(
                        await asyncio.wait_for(self._queue.get(), min(remaining, DRAIN_CHECK_S))
                    )
                except TimeoutError:
                    continue
            else:
                batch.append(self._queue.get_nowait())
        return batch

    def _prepare(self, batch: list[UsageRecord | Debit | _Rows]) -> _Rows:
        rows = _Rows()
        records: list[UsageRecord] = []
        for item in batch:
            if isinstance(item, _Rows):
                rows.add(item)  # a retry: observed already
            elif isinstance(item, Debit):
                row = (item.key_id, item.period)
                rows.debits[row] = rows.debits.get(row, 0.0) + item.cost_usd
            else:
                records.append(item)
        self._observe(records)
        for record in records:
            usage = _row(record)
            exchange = record.exchange
            if exchange is not None and exchange.bodies is not None:
                rows.with_bodies.append((usage, _bodies(exchange, exchange.bodies)))
            else:
                rows.usage.append(usage)
        return rows

    def _observe(self, records: list[UsageRecord]) -> None:
        if not records:
            return
        if self._calls.isEnabledFor(logging.INFO):
            for record in records:
                self._calls.info(_log_line(record), extra={"gateway_call": _row(record)})
        for observer in self._observers:
            try:
                observer.observe(records)
            except Exception:  # metrics or an exporter must never stop accounting
                self._log.warning("gateway call observer %r failed", observer, exc_info=True)

    async def _write(self, rows: _Rows) -> None:
        async with self._engine.begin() as conn:
            if rows.usage:
                await conn.execute(self._insert_usage, rows.usage)
            if rows.with_bodies:
                result = await conn.execute(
                    self._insert_returning, [usage for usage, _ in rows.with_bodies]
                )
                ids = [row[0] for row in result]
                await conn.execute(
                    insert(self._tables.bodies),
                    [
                        dict(body, usage_id=usage_id)
                        for usage_id, (_, body) in zip(ids, rows.with_bodies, strict=True)
                    ],
                )
            if rows.debits:
                await conn.execute(
                    self._add_spend,
                    [
                        {"key_id": key_id, "period": period, "cost": cost}
                        for (key_id, period), cost in rows.debits.items()
                    ],
                )


def _row(r: UsageRecord) -> JSON:
    # dataclasses.asdict deep-copies (the exchange too); the columns are all scalars.
    return {name: getattr(r, name) for name in COLUMNS}


def _bodies(exchange: Exchange, config: BodyLogConfig) -> JSON:
    return {
        "request": logged_body(exchange.request, config.redact, config.max_bytes),
        "response": logged_body(exchange.response, config.redact, config.max_bytes),
    }


def _log_line(r: UsageRecord) -> str:
    ttft = f"{r.ttft_ms:.1f}" if r.ttft_ms is not None else "-"
    return (
        f"{r.api} key={r.key_name} model={r.model} provider={r.provider or '-'} "
        f"upstream_model={r.upstream_model or '-'} status={r.status} "
        f"tokens={r.prompt_tokens}+{r.completion_tokens} cached={r.cached_tokens} "
        f"cost_usd={r.cost_usd:.6f} latency_ms={r.latency_ms:.1f} ttft_ms={ttft} "
        f"cache={'hit' if r.cache_hit else 'miss'} fallback={str(r.fallback).lower()} "
        f"stream={str(r.stream).lower()}"
    )
