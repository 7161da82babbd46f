"""AuditLog: the durable, append-only store of audit events.

`record` only buffers — the request that caused an event never waits on the
database. A flusher task owned by the log writes what accumulated in one transaction
per batch, `linger_s` after the first event of a burst; `close` writes the rest.
Queries flush first, so a reader sees every call answered before its query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import asdict, dataclass
from typing import ClassVar

from sqlalchemy import MetaData, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.audit.model import AuditEvent
from lamina.audit.tables import APPEND_ONLY_TRIGGERS, audit_events, audit_metadata

logger = logging.getLogger(__name__)
WRITE_ATTEMPTS = 3
MAX_QUERY = 10_000


@dataclass(frozen=True, slots=True)
class AuditQuery:
    since_ms: int | None = None
    principal_arn: str | None = None
    operation: str | None = None
    denied_only: bool = False
    limit: int = 1000


class AuditLog:
    metadata: ClassVar[MetaData] = audit_metadata

    def __init__(
        self, engine: AsyncEngine, *, linger_s: float = 0.1, max_buffered: int = 100_000
    ) -> None:
        self._engine = engine
        self._linger_s = linger_s
        self._max_buffered = max_buffered
        self._pending: deque[AuditEvent] = deque()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self.dropped_events = 0

    async def start(self) -> None:
        if self._engine.dialect.name == "sqlite":
            async with self._engine.begin() as conn:
                for statement in APPEND_ONLY_TRIGGERS:
                    await conn.execute(text(statement))
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="lamina-audit-flusher")

    async def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task
        await self.flush()

    def record(self, event: AuditEvent) -> None:
        """Buffer one event; never blocks. Past `max_buffered` (the database is down or
        far behind) events are dropped, counted and reported, never kept unbounded."""
        if len(self._pending) >= self._max_buffered:
            self.dropped_events += 1
            return
        self._pending.append(event)
        self._wake.set()

    async def flush(self) -> None:
        """Write everything recorded before this call."""
        async with self._write_lock:
            if not self._pending:
                return
            batch = list(self._pending)
            self._pending.clear()
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(audit_events.insert(), [asdict(e) for e in batch])
            except Exception:
                self._failures += 1
                if self._failures < WRITE_ATTEMPTS:
                    self._pending.extendleft(reversed(batch))
                else:
                    self._failures = 0
                    self.dropped_events += len(batch)
                    logger.error(
                        "dropped %d audit events after repeated write failures", len(batch)
                    )
                raise
            self._failures = 0

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._linger_s)
            try:
                await self.flush()
            except Exception:
                logger.exception("writing audit events failed; retrying in 1 s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                self._wake.set()

    async def query(self, q: AuditQuery) -> list[AuditEvent]:
        """Matching events, oldest first: the latest `q.limit` of them."""
        await self.flush()
        table = audit_events
        stmt = select(table).order_by(table.c.id.desc()).limit(max(1, min(q.limit, MAX_QUERY)))
        if q.since_ms is not None:
            stmt = stmt.where(table.c.time_ms >= q.since_ms)
        if q.principal_arn:
            stmt = stmt.where(table.c.principal_arn == q.principal_arn)
        if q.operation:
            stmt = stmt.where(table.c.operation == q.operation)
        if q.denied_only:
            stmt = stmt.where(table.c.allowed.is_(False))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        fields = AuditEvent.__dataclass_fields__
        return [AuditEvent(**{k: row[k] for k in fields}) for row in reversed(rows)]
