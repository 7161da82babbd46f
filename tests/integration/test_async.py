"""Async invokes: stored before 202, retried per the event invoke config, never lost —
not even when the server is killed with SIGKILL while events are waiting."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.integration.support import LaminaServer, create_function

RECORDER = """
import json, os, time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    with open(os.environ["OUT"], "a") as out:
        out.write(json.dumps({"id": event["id"], "request": context.aws_request_id}) + "\\n")
    return "ok"
"""

FLAKY = """
import json, os
def handler(event, context):
    with open(os.environ["OUT"], "a") as out:
        out.write(context.aws_request_id + "\\n")
    count = sum(1 for _ in open(os.environ["OUT"]))
    if count < event["succeed_on"]:
        raise RuntimeError("attempt %d fails" % count)
    return "ok"
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_async_invoke_runs_the_function(lambda_client: Any, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    name = create_function(lambda_client, RECORDER, Environment={"Variables": {"OUT": str(out)}})
    for i in range(5):
        response = lambda_client.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"id": i})
        )
        assert response["StatusCode"] == 202
    _wait_for(lambda: len(_lines(out)) >= 5)
    assert sorted(json.loads(line)["id"] for line in _lines(out)) == [0, 1, 2, 3, 4]


def test_failed_async_invokes_are_retried_per_config(lambda_client: Any, tmp_path: Path) -> None:
    out = tmp_path / "flaky.txt"
    name = create_function(lambda_client, FLAKY, Environment={"Variables": {"OUT": str(out)}})
    lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"succeed_on": 3}))
    _wait_for(lambda: len(_lines(out)) >= 3)
    time.sleep(1.0)  # no further attempt after the success
    attempts = _lines(out)
    assert len(attempts) == 3
    assert len(set(attempts)) == 1  # retries keep the request id, as Lambda's do

    out2 = tmp_path / "no-retry.txt"
    other = create_function(lambda_client, FLAKY, Environment={"Variables": {"OUT": str(out2)}})
    lambda_client.put_function_event_invoke_config(FunctionName=other, MaximumRetryAttempts=0)
    lambda_client.invoke(FunctionName=other, InvocationType="Event", Payload=json.dumps({"succeed_on": 99}))
    _wait_for(lambda: len(_lines(out2)) >= 1)
    time.sleep(1.5)  # the retry delay in tests is 0.2 s doubling: a retry would have come
    assert len(_lines(out2)) == 1


def test_default_is_two_retries(lambda_client: Any, tmp_path: Path) -> None:
    out = tmp_path / "always.txt"
    name = create_function(lambda_client, FLAKY, Environment={"Variables": {"OUT": str(out)}})
    lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"succeed_on": 99}))
    _wait_for(lambda: len(_lines(out)) >= 3)
    time.sleep(2.0)
    assert len(_lines(out)) == 3  # the first attempt and two retries


def test_async_events_survive_kill_9(fresh_server: LaminaServer, tmp_path: Path) -> None:
    out = tmp_path / "survivors.jsonl"
    fresh_server.start()
    client = fresh_server.client()
    name = create_function(client, RECORDER, Timeout=30, Environment={"Variables": {"OUT": str(out)}})
    # One slot only, so most events are still queued when the server dies.
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    count = 30
    for i in range(count):
        response = client.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"id": i, "sleep": 0.2})
        )
        assert response["StatusCode"] == 202
    fresh_server.kill9()
    done_before = {json.loads(line)["id"] for line in _lines(out)}
    assert len(done_before) < count

    fresh_server.start()
    _wait_for(lambda: {json.loads(line)["id"] for line in _lines(out)} >= set(range(count)), timeout=90)
