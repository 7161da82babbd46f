"""AuditLog: the durable, append-only store of audit events.

`record` only buffers — the request that caused an event never waits on the
database. A flusher task owned by the log writes what accumulated in one transaction
per batch, `linger_s` after the first event of a burst; `close` writes the rest.
Queries flush first, so a reader sees every call answered before its query.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from sqlalchemy import MetaData, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lamina.audit.model import AuditEvent
from lamina.audit.tables import APPEND_ONLY_TRIGGERS, audit_events, audit_metadata
from lamina.storage.write_buffer import WriteBuffer

MAX_QUERY = 10_000


async def _insert(conn: AsyncConnection, batch: list[AuditEvent]) -> None:
    await conn.execute(audit_events.insert(), [asdict(e) for e in batch])


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
        self._buffer: WriteBuffer[AuditEvent] = WriteBuffer(
            engine, _insert, name="audit events", linger_s=linger_s, max_buffered=max_buffered
        )

    @property
    def dropped_events(self) -> int:
        return self._buffer.dropped

    async def start(self) -> None:
        if self._engine.dialect.name == "sqlite":
            async with self._engine.begin() as conn:
                for statement in APPEND_ONLY_TRIGGERS:
                    await conn.execute(text(statement))
        self._buffer.start()

    async def close(self) -> None:
        await self._buffer.close()

    def record(self, event: AuditEvent) -> None:
        """Buffer one event; never blocks. Past `max_buffered` (the database is down or
        far behind) events are dropped, counted and reported, never kept unbounded."""
        self._buffer.extend([event])

    async def flush(self) -> None:
        """Write everything recorded before this call."""
        await self._buffer.flush()

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
