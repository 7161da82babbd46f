"""LogsService called directly (no HTTP) over a temporary SQLite log store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lamina.errors import LaminaError
from lamina.protocols.context import RequestContext
from lamina.services.logs import LogsService
from lamina.storage.database import open_database, sqlite_url
from lamina.telemetry.logstore import LogStore

NOW_MS = 1_800_000_000_000


def ctx(operation: str = "") -> RequestContext:
    return RequestContext(
        request_id="req-1",
        access_key_id="AKIDTEST",
        account_id="000000000000",
        region="us-east-1",
        service="logs",
        operation=operation,
        headers={},
        source_ip="127.0.0.1",
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogStore]:
    engine = await open_database(sqlite_url(tmp_path / "logs.db"), LogStore.metadata)
    log_store = LogStore(engine, lambda: NOW_MS / 1000)
    await log_store.start()
    yield log_store
    await log_store.close()
    await engine.dispose()


@pytest.fixture
def logs(store: LogStore) -> LogsService:
    return LogsService(store)


async def call(service: LogsService, operation: str, **params: Any) -> dict[str, Any]:
    return await service(operation, params, ctx(operation))


async def test_group_and_stream_lifecycle(logs: LogsService) -> None:
    await call(logs, "CreateLogGroup", logGroupName="app")
    await call(logs, "CreateLogStream", logGroupName="app", logStreamName="s1")
    groups = await call(logs, "DescribeLogGroups", logGroupNamePrefix="a")
    assert groups["logGroups"] == [
        {
            "logGroupName": "app",
            "creationTime": NOW_MS,
            "metricFilterCount": 0,
            "arn": "arn:aws:logs:us-east-1:000000000000:log-group:app:*",
            "logGroupArn": "arn:aws:logs:us-east-1:000000000000:log-group:app",
            "storedBytes": 0,
            "logGroupClass": "STANDARD",
        }
    ]
    streams = await call(logs, "DescribeLogStreams", logGroupName="app")
    assert streams["logStreams"][0]["logStreamName"] == "s1"
    assert streams["logStreams"][0]["arn"].endswith(":log-group:app:log-stream:s1")
    assert "nextToken" not in streams
    await call(logs, "CreateLogStream", logGroupName="app", logStreamName="s2")
    await call(
        logs, "PutLogEvents", logGroupName="app", logStreamName="s2",
        logEvents=[{"timestamp": NOW_MS, "message": "12345"}],
    )  # fmt: skip
    described = await call(logs, "DescribeLogGroups")
    assert described["logGroups"][0]["storedBytes"] == 5
    await call(logs, "DeleteLogStream", logGroupName="app", logStreamName="s2")
    described = await call(logs, "DescribeLogGroups")
    assert described["logGroups"][0]["storedBytes"] == 0
    with pytest.raises(LaminaError) as gone:
        await call(logs, "DeleteLogStream", logGroupName="app", logStreamName="s2")
    assert gone.value.message == "The specified log stream does not exist."
    await call(logs, "PutRetentionPolicy", logGroupName="app", retentionInDays=30)
    described = await call(logs, "DescribeLogGroups")
    assert described["logGroups"][0]["retentionInDays"] == 30
    await call(logs, "DeleteRetentionPolicy", logGroupName="app")
    described = await call(logs, "DescribeLogGroups")
    assert "retentionInDays" not in described["logGroups"][0]
    with pytest.raises(LaminaError) as bad_days:
        await call(logs, "PutRetentionPolicy", logGroupName="app", retentionInDays=2)
    assert bad_days.value.code == "InvalidParameterException"
    await call(logs, "DeleteLogGroup", logGroupName="app")
    assert (await call(logs, "DescribeLogGroups"))["logGroups"] == []


async def test_unknown_group_is_resource_not_found(logs: LogsService) -> None:
    for operation, params in [
        ("DeleteLogGroup", {"logGroupName": "nope"}),
        ("DescribeLogStreams", {"logGroupName": "nope"}),
        ("GetLogEvents", {"logGroupName": "nope", "logStreamName": "s"}),
        ("FilterLogEvents", {"logGroupName": "nope"}),
        (
            "PutLogEvents",
            {
                "logGroupName": "nope",
                "logStreamName": "s",
                "logEvents": [{"timestamp": NOW_MS, "message": "x"}],
            },
        ),
    ]:
        with pytest.raises(LaminaError) as refused:
            await call(logs, operation, **params)
        assert refused.value.code == "ResourceNotFoundException", operation
        assert refused.value.message == "The specified log group does not exist."
        assert refused.value.status == 400


async def test_unknown_operation(logs: LogsService) -> None:
    with pytest.raises(LaminaError) as refused:
        await call(logs, "StartQuery")
    assert (refused.value.code, refused.value.status) == ("UnknownOperationException", 400)


async def test_put_get_filter_events(logs: LogsService) -> None:
    await call(logs, "CreateLogGroup", logGroupName="app")
    await call(logs, "CreateLogStream", logGroupName="app", logStreamName="s1")
    put = await call(
        logs,
        "PutLogEvents",
        logGroupName="app",
        logStreamName="s1",
        logEvents=[{"timestamp": NOW_MS + i, "message": f"line {i}"} for i in range(3)],
    )
    assert "rejectedLogEventsInfo" not in put and put["nextSequenceToken"]
    got = await call(
        logs, "GetLogEvents", logGroupName="app", logStreamName="s1", startFromHead=True, limit=2
    )
    assert got["events"] == [
        {"timestamp": NOW_MS, "message": "line 0", "ingestionTime": NOW_MS},
        {"timestamp": NOW_MS + 1, "message": "line 1", "ingestionTime": NOW_MS},
    ]
    more = await call(
        logs,
        "GetLogEvents",
        logGroupIdentifier="app",
        logStreamName="s1",
        nextToken=got["nextForwardToken"],
    )
    assert [e["message"] for e in more["events"]] == ["line 2"]
    end = await call(
        logs,
        "GetLogEvents",
        logGroupName="app",
        logStreamName="s1",
        nextToken=more["nextForwardToken"],
    )
    assert end["events"] == [] and end["nextForwardToken"] == more["nextForwardToken"]
    arn = "arn:aws:logs:us-east-1:000000000000:log-group:app:*"
    found = await call(logs, "FilterLogEvents", logGroupIdentifier=arn, filterPattern="?0 ?2")
    assert [(e["logStreamName"], e["message"]) for e in found["events"]] == [
        ("s1", "line 0"),
        ("s1", "line 2"),
    ]
    assert found["searchedLogStreams"] == [] and "nextToken" not in found
    assert len(found["events"][0]["eventId"]) == 56
    page = await call(logs, "FilterLogEvents", logGroupName="app", limit=1)
    rest = await call(logs, "FilterLogEvents", logGroupName="app", nextToken=page["nextToken"])
    assert [e["message"] for e in rest["events"]] == ["line 1", "line 2"]


async def test_put_log_events_rules(logs: LogsService) -> None:
    await call(logs, "CreateLogGroup", logGroupName="app")
    with pytest.raises(LaminaError) as no_stream:
        await call(
            logs,
            "PutLogEvents",
            logGroupName="app",
            logStreamName="s",
            logEvents=[{"timestamp": NOW_MS, "message": "x"}],
        )
    assert no_stream.value.message == "The specified log stream does not exist."
    await call(logs, "CreateLogStream", logGroupName="app", logStreamName="s")
    with pytest.raises(LaminaError) as unordered:
        await call(
            logs,
            "PutLogEvents",
            logGroupName="app",
            logStreamName="s",
            logEvents=[
                {"timestamp": NOW_MS, "message": "b"},
                {"timestamp": NOW_MS - 1, "message": "a"},
            ],
        )
    assert unordered.value.code == "InvalidParameterException"
    day = 24 * 3600 * 1000
    put = await call(
        logs,
        "PutLogEvents",
        logGroupName="app",
        logStreamName="s",
        logEvents=[
            {"timestamp": NOW_MS - 15 * day, "message": "old"},
            {"timestamp": NOW_MS, "message": "ok"},
            {"timestamp": NOW_MS + day, "message": "future"},
        ],
    )
    assert put["rejectedLogEventsInfo"] == {
        "tooOldLogEventEndIndex": 0,
        "tooNewLogEventStartIndex": 2,
    }
    got = await call(logs, "GetLogEvents", logGroupName="app", logStreamName="s")
    assert [e["message"] for e in got["events"]] == ["ok"]
    with pytest.raises(LaminaError) as too_big:
        await call(
            logs,
            "PutLogEvents",
            logGroupName="app",
            logStreamName="s",
            logEvents=[{"timestamp": NOW_MS, "message": "x" * 600_000}] * 2,
        )
    assert too_big.value.code == "InvalidParameterException"


async def test_lambda_appends_are_visible_through_the_api(
    logs: LogsService, store: LogStore
) -> None:
    stream = "2027/01/15/[$LATEST]" + "0" * 32
    store.append("/aws/lambda/fn", stream, [(NOW_MS, "START RequestId: r Version: $LATEST\n")])
    found = await call(logs, "FilterLogEvents", logGroupName="/aws/lambda/fn")
    assert found["events"][0]["logStreamName"] == stream
    described = await call(
        logs,
        "DescribeLogStreams",
        logGroupName="/aws/lambda/fn",
        orderBy="LastEventTime",
        descending=True,
    )
    assert described["logStreams"][0]["lastEventTimestamp"] == NOW_MS


async def test_responses_parse_as_botocore_reads_them(logs: LogsService) -> None:
    """Render through the json protocol and read back with botocore's own parser."""
    testing = pytest.importorskip("lamina.protocols.testing")
    json_protocol = pytest.importorskip("lamina.protocols.json_protocol")
    import botocore.session

    model = botocore.session.get_session().get_service_model("logs")
    protocol = json_protocol.JsonProtocol(model)

    async def roundtrip(operation: str, **params: Any) -> Any:
        parsed = protocol.parse_request(testing.wire_request(model, operation, params))
        try:
            output = await logs(parsed.operation, parsed.params, ctx(operation))
            response = protocol.serialize_response(operation, output, "req-1")
        except LaminaError as error:
            response = protocol.serialize_error(error, "req-1")
        return testing.read_response(model, operation, response)

    await roundtrip("CreateLogGroup", logGroupName="app")
    await roundtrip("CreateLogStream", logGroupName="app", logStreamName="s")
    await roundtrip(
        "PutLogEvents",
        logGroupName="app",
        logStreamName="s",
        logEvents=[{"timestamp": NOW_MS, "message": "hello"}],
    )
    filtered = await roundtrip("FilterLogEvents", logGroupName="app")
    assert filtered["events"][0]["message"] == "hello"
    assert filtered["events"][0]["timestamp"] == NOW_MS
    missing = await roundtrip("DescribeLogStreams", logGroupName="nope")
    assert missing["Error"]["Code"] == "ResourceNotFoundException"
    assert missing["Error"]["Message"] == "The specified log group does not exist."
