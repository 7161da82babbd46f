"""AuditLog and AuditRecorder: buffered durable writes, filters, append-only, no secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.audit import AuditEvent, AuditLog, AuditQuery, AuditRecorder
from lamina.audit.endpoint import parse_query
from lamina.audit.model import resource_of
from lamina.errors import AccessDenied, InvalidParameterValue
from lamina.protocols.context import RequestContext
from lamina.storage.database import open_database, sqlite_url

ROOT = "arn:aws:iam::000000000000:root"
ALICE = "arn:aws:iam::000000000000:user/alice"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(sqlite_url(tmp_path / "audit.db"), AuditLog.metadata)
    yield engine
    await engine.dispose()


@pytest.fixture
async def log(engine: AsyncEngine) -> AsyncIterator[AuditLog]:
    log = AuditLog(engine, linger_s=0.01)
    await log.start()
    yield log
    await log.close()


def ctx(operation: str, service: str = "lambda", key: str = "ROOTKEY") -> RequestContext:
    return RequestContext(
        request_id=f"req-{operation}", access_key_id=key, account_id="000000000000",
        region="us-east-1", service=service, operation=operation, headers={},
        source_ip="10.0.0.7",
    )  # fmt: skip


def recorder(log: AuditLog) -> AuditRecorder:
    principals = {"ROOTKEY": ROOT, "ALICEKEY": ALICE}

    def principal_arn(c: RequestContext) -> str:
        if c.access_key_id not in principals:
            raise AccessDenied("gone")
        return principals[c.access_key_id]

    return AuditRecorder(log, principal_arn, clock=lambda: 1000.0)


async def test_records_calls_with_principal_outcome_and_resource(log: AuditLog) -> None:
    record = recorder(log)
    record(ctx("CreateFunction"), {"FunctionName": "orders", "Code": {"ZipFile": b"zip"}}, None)
    denied = AccessDenied("User alice is not authorized to perform lambda:DeleteFunction")
    record(ctx("DeleteFunction", key="ALICEKEY"), {"FunctionName": "orders"}, denied)
    bad = InvalidParameterValue("nope")
    record(ctx("GetAlias"), {"FunctionName": "orders", "Qualifier": "live"}, bad)
    events = await log.query(AuditQuery())
    assert events == [
        AuditEvent(1_000_000, "req-CreateFunction", ROOT, "ROOTKEY", "10.0.0.7", "lambda",
                   "CreateFunction", "orders", True, ""),
        AuditEvent(1_000_000, "req-DeleteFunction", ALICE, "ALICEKEY", "10.0.0.7", "lambda",
                   "DeleteFunction", "orders", False, "AccessDeniedException"),
        AuditEvent(1_000_000, "req-GetAlias", ROOT, "ROOTKEY", "10.0.0.7", "lambda",
                   "GetAlias", "orders:live", True, "InvalidParameterValueException"),
    ]  # fmt: skip


async def test_data_plane_calls_only_when_denied(log: AuditLog) -> None:
    record = recorder(log)
    record(ctx("Invoke"), {"FunctionName": "f"}, None)
    record(ctx("FilterLogEvents", service="logs"), {"logGroupName": "/aws/lambda/f"}, None)
    record(ctx("Invoke", key="ALICEKEY"), {"FunctionName": "f"}, AccessDenied("no"))
    events = await log.query(AuditQuery())
    assert [(e.operation, e.allowed) for e in events] == [("Invoke", False)]


async def test_a_deleted_key_is_recorded_by_its_id(log: AuditLog) -> None:
    recorder(log)(ctx("ListFunctions", key="GONEKEY"), {}, None)
    (event,) = await log.query(AuditQuery())
    assert event.principal_arn == "" and event.access_key_id == "GONEKEY"


async def test_filters(log: AuditLog) -> None:
    record = recorder(log)
    record(ctx("CreateFunction"), {"FunctionName": "a"}, None)
    record(ctx("DeleteFunction", key="ALICEKEY"), {"FunctionName": "a"}, AccessDenied("no"))
    record(ctx("ListFunctions", key="ALICEKEY"), {}, None)
    assert [e.operation for e in await log.query(AuditQuery(principal_arn=ALICE))] == [
        "DeleteFunction",
        "ListFunctions",
    ]
    assert [e.operation for e in await log.query(AuditQuery(denied_only=True))] == [
        "DeleteFunction"
    ]
    assert [e.operation for e in await log.query(AuditQuery(operation="CreateFunction"))] == [
        "CreateFunction"
    ]
    assert await log.query(AuditQuery(since_ms=1_000_001)) == []
    assert [e.operation for e in await log.query(AuditQuery(limit=1))] == ["ListFunctions"]


async def test_events_survive_close_and_the_table_is_append_only(
    engine: AsyncEngine, log: AuditLog
) -> None:
    recorder(log)(ctx("CreateFunction"), {"FunctionName": "a"}, None)
    await log.close()  # flushes what was buffered
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM audit_events"))).scalar() == 1
    for statement in ("UPDATE audit_events SET allowed = 0", "DELETE FROM audit_events"):
        with pytest.raises(DatabaseError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))


async def test_a_full_buffer_drops_and_counts(engine: AsyncEngine) -> None:
    log = AuditLog(engine, max_buffered=2)  # not started: nothing drains it
    for _ in range(3):
        recorder(log)(ctx("ListFunctions"), {}, None)
    assert log.dropped_events == 1
    await log.flush()
    assert len(await log.query(AuditQuery())) == 2


def test_resource_never_takes_values() -> None:
    assert resource_of({"Name": "db-password", "SecretString": "hunter2"}) == "db-password"
    assert resource_of({"Environment": {"Variables": {"TOKEN": "t"}}, "Role": "r"}) == ""
    assert resource_of({"Plaintext": b"secret", "KeyId": "alias/k"}) == "alias/k"
    assert resource_of({"FunctionName": "x" * 1000}) == "x" * 512


def test_parse_query() -> None:
    q = parse_query("since=5&principal=arn%3Aaws&operation=Invoke&denied=1&limit=7")
    assert q == AuditQuery(5, "arn:aws", "Invoke", True, 7)
    assert parse_query("") == AuditQuery()
