"""Invoke end to end: boto3 -> lamina serve -> a real environment process -> back."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from tests.integration.support import LaminaServer, create_function, log_messages

ECHO = """
import os, time
STARTED = time.time()
COUNT = 0

def handler(event, context):
    global COUNT
    COUNT += 1
    print("hello from", context.function_name)
    return {
        "event": event,
        "count": COUNT,
        "started": STARTED,
        "pid": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "log_group": context.log_group_name,
        "log_stream": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "client_context": getattr(context.client_context, "custom", None),
        "identity": context.identity is not None or True,
        "env": {k: os.environ.get(k) for k in (
            "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME",
            "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "AWS_LAMBDA_RUNTIME_API",
            "LAMBDA_TASK_ROOT", "_HANDLER", "GREETING", "AWS_ENDPOINT_URL", "TMPDIR")},
    }
"""


def invoke_json(client: Any, name: str, payload: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = client.invoke(
        FunctionName=name, Payload=json.dumps(payload if payload is not None else {}), **kwargs
    )
    return response, json.loads(response["Payload"].read())


def test_invoke_returns_result_context_and_env(lambda_client: Any) -> None:
    name = create_function(
        lambda_client, ECHO, MemorySize=256, Timeout=10,
        Environment={"Variables": {"GREETING": "hi"}},
    )  # fmt: skip
    response, body = invoke_json(lambda_client, name, {"x": 1})
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert body["event"] == {"x": 1}
    assert body["function_name"] == name
    assert body["function_version"] == "$LATEST"
    assert body["arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert int(body["memory"]) == 256
    assert body["log_group"] == f"/aws/lambda/{name}"
    assert "[$LATEST]" in body["log_stream"]
    assert 0 < body["remaining"] <= 10_000
    env = body["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "app.handler"
    assert env["GREETING"] == "hi"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["TMPDIR"] and env["LAMBDA_TASK_ROOT"]


def test_warm_environment_is_reused_and_init_runs_once(lambda_client: Any) -> None:
    name = create_function(lambda_client, ECHO)
    bodies = [invoke_json(lambda_client, name)[1] for _ in range(3)]
    assert [b["count"] for b in bodies] == [1, 2, 3]
    assert len({b["pid"] for b in bodies}) == 1
    assert len({b["started"] for b in bodies}) == 1
    assert len({b["request_id"] for b in bodies}) == 3


def test_handler_exception_is_reported_like_lambda(lambda_client: Any) -> None:
    code = "def handler(event, context):\n    raise ValueError('bad input: ' + str(event['n']))\n"
    name = create_function(lambda_client, code)
    response, body = invoke_json(lambda_client, name, {"n": 7})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "bad input: 7"
    assert isinstance(body["stackTrace"], list) and body["stackTrace"]


@pytest.mark.parametrize(
    ("files", "handler", "error_type"),
    [
        ({"app.py": "import not_a_module_anywhere\n"}, "app.handler", "Runtime.ImportModuleError"),
        ({"app.py": "def handler(:\n"}, "app.handler", "Runtime.UserCodeSyntaxError"),
        ({"app.py": "x = 1\n"}, "app.handler", "Runtime.HandlerNotFound"),
        ({"app.py": "x = 1\n"}, "nope.handler", "Runtime.ImportModuleError"),
    ],
)
def test_init_errors_surface_as_lambda_does(
    lambda_client: Any, files: dict[str, str], handler: str, error_type: str
) -> None:
    name = create_function(lambda_client, files, handler=handler)
    response, body = invoke_json(lambda_client, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == error_type


def test_log_tail_has_start_end_report(lambda_client: Any) -> None:
    name = create_function(lambda_client, ECHO)
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    log = base64.b64decode(response["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid")
    assert "START RequestId: " in log and "Version: $LATEST" in log
    assert "hello from " + name in log
    assert "END RequestId: " in log
    report = next(line for line in log.splitlines() if line.startswith("REPORT"))
    for part in ("Duration:", "Billed Duration:", "Memory Size: 128 MB", "Max Memory Used:", "Init Duration:"):
        assert part in report
    # As in Lambda, the Invoke's request id is the invocation's (context.aws_request_id).
    assert f"START RequestId: {request_id} " in log
    # a warm invoke has no Init Duration
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    log = base64.b64decode(response["LogResult"]).decode()
    assert "Init Duration" not in log


def test_dry_run_and_event(lambda_client: Any) -> None:
    name = create_function(lambda_client, ECHO)
    assert lambda_client.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    assert lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202


def test_client_context_reaches_the_handler(lambda_client: Any) -> None:
    name = create_function(lambda_client, ECHO)
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    _, body = invoke_json(lambda_client, name, ClientContext=ctx)
    assert body["client_context"] == {"k": "v"}


CHANNEL_PROBE = """
import os

def handler(event, context):
    inodes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.append(target[8:-1])
    unix = {line.split()[6] for line in open("/proc/net/unix").readlines()[1:]}
    return {
        "env": sorted(k for k in os.environ if "CHANNEL" in k),
        "sockets": len(inodes),
        "unix": sum(1 for inode in inodes if inode in unix),
        "api": os.environ["AWS_LAMBDA_RUNTIME_API"],
    }
"""


def test_builtin_runtime_uses_its_private_channel_invisibly(lambda_client: Any) -> None:
    """The built-in runtime talks to lamina over its socket pair, not HTTP: one socket
    (the channel), no variable naming it, and the standard Runtime API still set."""
    name = create_function(lambda_client, CHANNEL_PROBE)
    for _ in range(3):  # warm invocations use the same channel
        _, body = invoke_json(lambda_client, name)
        assert body["env"] == []
        assert body["sockets"] == body["unix"] == 1
        assert body["api"].startswith("127.0.0.1:")


def test_with_the_channel_off_the_builtin_runtime_speaks_http(
    fresh_server: LaminaServer,
) -> None:
    fresh_server.extra_env = {"LAMINA_RUNTIME_CHANNEL": "0"}
    fresh_server.start()
    client = fresh_server.client()
    name = create_function(client, CHANNEL_PROBE)
    for _ in range(3):
        _, body = invoke_json(client, name)
        assert body["sockets"] == 1 and body["unix"] == 0  # its TCP connection to the API


SLOW = """import time


def handler(event, context):
    print("started", event["tag"], context.aws_request_id)
    time.sleep(event["s"])
    print("finished", event["tag"])
    return event
"""


def test_a_caller_that_goes_away_does_not_cut_the_run_short(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    name = create_function(lambda_client, SLOW)
    impatient = boto3.client(
        "lambda", endpoint_url=lamina_server.endpoint, region_name="us-east-1",
        aws_access_key_id=lamina_server.access_key_id,
        aws_secret_access_key=lamina_server.secret_access_key,
        config=Config(read_timeout=0.3, retries={"max_attempts": 0}),
    )  # fmt: skip
    # botocore gives up after 0.3 s and closes its connection while the handler sleeps.
    with pytest.raises(ReadTimeoutError):
        impatient.invoke(FunctionName=name, Payload=json.dumps({"s": 1.0, "tag": "gone"}))
    messages = log_messages(
        lamina_server, name, until=lambda ms: any(m.startswith("REPORT ") for m in ms)
    )
    started = next(m for m in messages if m.startswith("started gone "))
    request_id = started.split()[-1]
    # As in Lambda: the run finishes and is reported, and the environment serves again.
    assert "finished gone" in messages
    assert f"END RequestId: {request_id}" in messages
    response, body = invoke_json(lambda_client, name, {"s": 0, "tag": "next"})
    assert response["StatusCode"] == 200 and body == {"s": 0, "tag": "next"}
    assert lamina_server.process is not None and lamina_server.process.poll() is None
