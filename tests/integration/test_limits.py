"""Limits are enforced, and a misbehaving function never hurts the server or others."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.support import create_function

SLEEPY = """
import os, time
def handler(event, context):
    start = time.time()
    time.sleep(event.get("sleep", 0))
    return {"pid": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"], "start": start, "end": time.time()}
"""


def _invoke(client: Any, name: str, payload: Any) -> tuple[Any, Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload))
    return response, json.loads(response["Payload"].read())


def test_timeout_kills_the_environment_and_the_next_call_gets_a_fresh_one(lambda_client: Any) -> None:
    name = create_function(lambda_client, SLEEPY, Timeout=1)
    _, first = _invoke(lambda_client, name, {})
    response, body = _invoke(lambda_client, name, {"sleep": 30})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    _, after = _invoke(lambda_client, name, {})
    assert after["pid"] != first["pid"]


def test_concurrent_invocations_run_in_parallel_environments(lambda_client: Any) -> None:
    name = create_function(lambda_client, SLEEPY, Timeout=30)
    barrier_payload = {"sleep": 1.0}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _invoke(lambda_client, name, barrier_payload)[1], range(4)))
    assert len({r["pid"] for r in results}) == 4
    # every run overlapped every other: they ran at the same time, not one after another
    latest_start = max(r["start"] for r in results)
    earliest_end = min(r["end"] for r in results)
    assert latest_start < earliest_end


def test_reserved_concurrency_throttles_excess_sync_calls(lambda_client: Any) -> None:
    name = create_function(lambda_client, SLEEPY, Timeout=30)
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    started = threading.Event()
    outcome: dict[str, Any] = {}

    def slow() -> None:
        started.set()
        while "slow" not in outcome:  # the probing calls below may hold the slot a moment
            try:
                outcome["slow"] = _invoke(lambda_client, name, {"sleep": 3})[1]
            except ClientError:
                continue

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait()
    throttled = None
    for _ in range(200):  # until the slow call holds the only slot
        try:
            _invoke(lambda_client, name, {})
        except ClientError as err:
            throttled = err.response
            break
    thread.join()
    assert throttled is not None
    assert throttled["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert throttled["Error"]["Code"] == "TooManyRequestsException"
    assert throttled["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert "pid" in outcome["slow"]

    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as err:
        _invoke(lambda_client, name, {})
    assert err.value.response["Error"]["Code"] == "TooManyRequestsException"
    lambda_client.delete_function_concurrency(FunctionName=name)
    assert _invoke(lambda_client, name, {})[0]["StatusCode"] == 200


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ("import os\n    os._exit(3)", "Runtime.ExitError"),
        ("import ctypes\n    ctypes.string_at(0)", "Runtime.ExitError"),
        ("while True:\n        pass", "Sandbox.Timedout"),
        ("import sys\n    sys.exit(0)", "Runtime.ExitError"),
    ],
)
def test_crashing_handlers_never_take_down_the_server(
    lambda_client: Any, body: str, error_type: str
) -> None:
    bad = create_function(lambda_client, f"def handler(event, context):\n    {body}\n", Timeout=2)
    good = create_function(lambda_client, SLEEPY)
    response, result = _invoke(lambda_client, bad, {})
    assert response["FunctionError"] == "Unhandled"
    assert result["errorType"] == error_type
    assert _invoke(lambda_client, good, {})[0]["StatusCode"] == 200
    # and the bad function itself works again on a fresh environment (and fails the same way)
    assert _invoke(lambda_client, bad, {})[1]["errorType"] == error_type


def test_megabytes_of_output_are_survived(lambda_client: Any) -> None:
    code = "def handler(event, context):\n    for i in range(200000):\n        print('x' * 100, i)\n    return 'done'\n"
    name = create_function(lambda_client, code, Timeout=60)
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    assert json.loads(response["Payload"].read()) == "done"
    assert len(response["LogResult"]) <= 4096 * 4 // 3 + 4


def test_oversized_response_is_a_function_error(lambda_client: Any) -> None:
    code = "def handler(event, context):\n    return 'x' * (7 * 1024 * 1024)\n"
    name = create_function(lambda_client, code, Timeout=30)
    response, body = _invoke(lambda_client, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"
