"""Async invokes: stored before 202, retried per the event invoke config, never lost —
not even when the server is killed with SIGKILL while events are waiting."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.integration.support import LaminaServer, create_function, log_messages

RECORDER = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    print("done", event["id"])
    return "ok"
"""

# Counts attempts in a module global: retries of one event reach the same warm
# environment (it is idle between attempts), as they would on Lambda.
FLAKY = """
ATTEMPTS = 0
def handler(event, context):
    global ATTEMPTS
    ATTEMPTS += 1
    print("attempt", ATTEMPTS, context.aws_request_id)
    if ATTEMPTS < event["succeed_on"]:
        raise RuntimeError("attempt %d fails" % ATTEMPTS)
    return "ok"
"""


def _done_ids(messages: list[str]) -> set[int]:
    return {int(m.split()[1]) for m in messages if m.startswith("done ")}


def _attempts(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("attempt ")]


def test_async_invoke_runs_the_function(lamina_server: LaminaServer, lambda_client: Any) -> None:
    name = create_function(lambda_client, RECORDER)
    for i in range(5):
        response = lambda_client.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"id": i})
        )
        assert response["StatusCode"] == 202
    messages = log_messages(lamina_server, name, lambda m: len(_done_ids(m)) >= 5)
    assert _done_ids(messages) == {0, 1, 2, 3, 4}


def test_failed_async_invokes_are_retried_per_config(lamina_server: LaminaServer, lambda_client: Any) -> None:
    name = create_function(lambda_client, FLAKY)
    lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"succeed_on": 3}))
    log_messages(lamina_server, name, lambda m: len(_attempts(m)) >= 3)
    time.sleep(1.0)  # no further attempt after the success
    attempts = _attempts(log_messages(lamina_server, name))
    assert len(attempts) == 3
    assert len({a.split()[2] for a in attempts}) == 1  # retries keep the request id, as Lambda's do

    other = create_function(lambda_client, FLAKY)
    lambda_client.put_function_event_invoke_config(FunctionName=other, MaximumRetryAttempts=0)
    lambda_client.invoke(FunctionName=other, InvocationType="Event", Payload=json.dumps({"succeed_on": 99}))
    log_messages(lamina_server, other, lambda m: len(_attempts(m)) >= 1)
    time.sleep(1.5)  # the retry delay in tests is 0.2 s doubling: a retry would have come
    assert len(_attempts(log_messages(lamina_server, other))) == 1


def test_default_is_two_retries(lamina_server: LaminaServer, lambda_client: Any) -> None:
    name = create_function(lambda_client, FLAKY)
    lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"succeed_on": 99}))
    log_messages(lamina_server, name, lambda m: len(_attempts(m)) >= 3)
    time.sleep(2.0)
    assert len(_attempts(log_messages(lamina_server, name))) == 3  # the first attempt and two retries


def test_async_events_survive_kill_9(fresh_server: LaminaServer) -> None:
    fresh_server.start()
    client = fresh_server.client()
    name = create_function(client, RECORDER, Timeout=30)
    # One slot only, so most events are still queued when the server dies.
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    count = 12
    for i in range(count):
        response = client.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"id": i, "sleep": 0.2})
        )
        assert response["StatusCode"] == 202
    fresh_server.kill9()

    fresh_server.start()
    done = _done_ids(log_messages(fresh_server, name, lambda m: _done_ids(m) >= set(range(count)), 90))
    assert done == set(range(count))
