"""CloudWatch Logs API end to end: boto3 and the AWS CLI against a real `lamina serve`,
including the logs every Lambda invocation writes."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import LaminaServer, create_function, unique_name

AWS = str(Path(sys.executable).parent / "aws")


@pytest.fixture(scope="module")
def logs_client(lamina_server: LaminaServer) -> Any:
    return lamina_server.client("logs")


def wait_for_events(logs_client: Any, group: str, needle: str, timeout_s: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pages = logs_client.get_paginator("filter_log_events").paginate(logGroupName=group)
            events = [e for page in pages for e in page["events"]]
        except logs_client.exceptions.ResourceNotFoundException:
            events = []
        if any(needle in e["message"] for e in events) or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_groups_streams_and_events(logs_client: Any) -> None:
    group = f"/app/{unique_name('grp')}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    now = int(time.time() * 1000)
    put = logs_client.put_log_events(
        logGroupName=group,
        logStreamName="web-1",
        logEvents=[{"timestamp": now + i, "message": f"GET /item/{i} 200"} for i in range(5)],
    )
    assert "rejectedLogEventsInfo" not in put
    described = logs_client.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in described] == [group]
    assert described[0]["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{group}:*"
    streams = logs_client.describe_log_streams(logGroupName=group)["logStreams"]
    assert streams[0]["logStreamName"] == "web-1"
    assert streams[0]["lastEventTimestamp"] == now + 4

    got = logs_client.get_log_events(
        logGroupName=group, logStreamName="web-1", startFromHead=True, limit=3
    )
    assert [e["message"] for e in got["events"]] == [f"GET /item/{i} 200" for i in range(3)]
    rest = logs_client.get_log_events(
        logGroupName=group, logStreamName="web-1", nextToken=got["nextForwardToken"]
    )
    assert len(rest["events"]) == 2

    matched = logs_client.filter_log_events(logGroupName=group, filterPattern='"/item/3"')
    assert [e["message"] for e in matched["events"]] == ["GET /item/3 200"]
    assert set(matched["events"][0]) >= {
        "logStreamName",
        "timestamp",
        "message",
        "ingestionTime",
        "eventId",
    }
    pages = logs_client.get_paginator("filter_log_events").paginate(
        logGroupName=group, PaginationConfig={"PageSize": 2}
    )
    assert len([e for page in pages for e in page["events"]]) == 5
    logs_client.delete_log_group(logGroupName=group)
    assert logs_client.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []


def test_errors_have_cloudwatch_codes(logs_client: Any) -> None:
    with pytest.raises(logs_client.exceptions.ResourceNotFoundException) as missing:
        logs_client.describe_log_streams(logGroupName="/no/such/group")
    assert missing.value.response["Error"]["Message"] == "The specified log group does not exist."
    group = f"/app/{unique_name('dup')}"
    logs_client.create_log_group(logGroupName=group)
    with pytest.raises(logs_client.exceptions.ResourceAlreadyExistsException):
        logs_client.create_log_group(logGroupName=group)
    with pytest.raises(logs_client.exceptions.InvalidParameterException):
        logs_client.filter_log_events(logGroupName=group, filterPattern='"unclosed')


def test_invocations_write_lambda_logs(lamina_server: LaminaServer, logs_client: Any) -> None:
    lambda_client = lamina_server.client("lambda")
    name = create_function(
        lambda_client, "def handler(event, context):\n    print('marker', event['n'])\n"
    )
    for n in range(2):
        lambda_client.invoke(FunctionName=name, Payload=f'{{"n": {n}}}'.encode())
    group = f"/aws/lambda/{name}"
    events = wait_for_events(logs_client, group, "marker 1")
    messages = [e["message"] for e in events]
    assert any(m.startswith("START RequestId: ") for m in messages)
    assert any(m.startswith("END RequestId: ") for m in messages)
    assert any(m.startswith("REPORT RequestId: ") and "Billed Duration" in m for m in messages)
    assert any("marker 0" in m for m in messages) and any("marker 1" in m for m in messages)
    streams = logs_client.describe_log_streams(
        logGroupName=group, orderBy="LastEventTime", descending=True
    )["logStreams"]
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", streams[0]["logStreamName"])
    reports = logs_client.filter_log_events(logGroupName=group, filterPattern="REPORT")["events"]
    assert len(reports) >= 2


def test_aws_cli_reads_the_logs(lamina_server: LaminaServer, logs_client: Any) -> None:
    group = f"/cli/{unique_name('grp')}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="s")
    logs_client.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "from the cli test"}],
    )
    result = subprocess.run(
        [AWS, "logs", "filter-log-events", "--log-group-name", group,
         "--endpoint-url", lamina_server.endpoint, "--output", "json"],
        env=lamina_server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "from the cli test" in result.stdout


def test_logs_are_kept_per_version(lamina_server: LaminaServer, logs_client: Any) -> None:
    lambda_client = lamina_server.client("lambda")
    name = create_function(
        lambda_client, "def handler(event, context):\n    print('from', context.function_version)\n"
    )
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.invoke(FunctionName=name, Qualifier=version, Payload=b"{}")
    lambda_client.invoke(FunctionName=name, Payload=b"{}")
    group = f"/aws/lambda/{name}"
    wait_for_events(logs_client, group, "from $LATEST")
    by_stream: dict[str, list[str]] = {}
    for e in wait_for_events(logs_client, group, f"from {version}"):
        by_stream.setdefault(e["logStreamName"], []).append(e["message"])
    versioned = [s for s in by_stream if f"/[{version}]" in s]
    latest = [s for s in by_stream if "/[$LATEST]" in s]
    assert versioned and latest
    assert any(f"from {version}" in m for s in versioned for m in by_stream[s])
    assert all("from $LATEST" not in m for s in versioned for m in by_stream[s])
    # A cold start's REPORT line carries Init Duration, as Lambda's does.
    reports = [m for s in versioned for m in by_stream[s] if m.startswith("REPORT")]
    assert reports and "Init Duration: " in reports[0] and "Max Memory Used: " in reports[0]
    only_version = logs_client.filter_log_events(
        logGroupName=group, logStreamNames=versioned, filterPattern='"START RequestId"'
    )["events"]
    assert only_version and all(f"Version: {version}" in e["message"] for e in only_version)
