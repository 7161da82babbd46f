"""The runtime as a function sees it: events in, results and errors out, context, logs.

Each test runs bootstrap.py as a real process under each interpreter against the
fake Runtime API.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from tests.unit.runtimes.python_runtime_harness import Launcher

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_success_and_module_init_runs_once(launcher: Launcher) -> None:
    launcher.write(
        "app.py",
        "INITS = []\nINITS.append(1)\n"
        "def handler(event, context):\n"
        "    return {'event': event, 'inits': len(INITS)}\n",
    )
    run = launcher.start("app.handler")
    ids = [run.api.invoke({"n": n}) for n in range(3)]
    results = [run.api.result(request_id) for request_id in ids]
    assert [r.kind for r in results] == ["response"] * 3
    assert [r.json() for r in results] == [{"event": {"n": n}, "inits": 1} for n in range(3)]
    assert results[0].headers["content-type"] == "application/json"
    assert run.api.connections == 1  # one kept-alive connection for every exchange
    assert run.finish() == 0
    assert run.stderr == ""


def test_exception_shape_and_log(launcher: Launcher) -> None:
    path = launcher.write(
        "app.py",
        "def handler(event, context):\n    raise ValueError('x')\n",
    )
    run = launcher.start("app.handler")
    request_id = run.api.invoke({})
    posted = run.api.result(request_id)
    assert posted.kind == "error"
    assert posted.headers["lambda-runtime-function-error-type"] == "ValueError"
    assert posted.json() == {
        "errorMessage": "x",
        "errorType": "ValueError",
        "requestId": request_id,
        "stackTrace": [f"  File \"{path}\", line 2, in handler\n    raise ValueError('x')\n"],
    }
    cause = json.loads(posted.headers["lambda-runtime-function-xray-error-cause"])
    assert cause["exceptions"] == [
        {
            "message": "x",
            "type": "ValueError",
            "stack": [{"label": "handler", "path": str(path), "line": 2}],
        }
    ]
    assert run.finish() == 0
    nbsp = "\u00a0"
    assert run.stdout == (
        "[ERROR] ValueError: x\rTraceback (most recent call last):\r"
        f"{nbsp * 2}File \"{path}\", line 2, in handler\r{nbsp * 4}raise ValueError('x')\n"
    )


def test_context_attributes(launcher: Launcher) -> None:
    launcher.write(
        "app.py",
        "def handler(event, context):\n"
        "    c = context\n"
        "    return {\n"
        "        'aws_request_id': c.aws_request_id, 'function_name': c.function_name,\n"
        "        'function_version': c.function_version,\n"
        "        'invoked_function_arn': c.invoked_function_arn,\n"
        "        'memory_limit_in_mb': c.memory_limit_in_mb,\n"
        "        'log_group_name': c.log_group_name, 'log_stream_name': c.log_stream_name,\n"
        "        'identity': [c.identity.cognito_identity_id,\n"
        "                     c.identity.cognito_identity_pool_id],\n"
        "        'client_context': None if c.client_context is None else [\n"
        "            c.client_context.custom, c.client_context.env,\n"
        "            c.client_context.client.installation_id,\n"
        "            c.client_context.client.app_title],\n"
        "        'w3c': c.w3c(), 'tenant_id': c.tenant_id,\n"
        "    }\n",
    )
    run = launcher.start("app.handler")
    plain = run.api.invoke({}, request_id="req-1")
    rich = run.api.invoke(
        {},
        request_id="req-2",
        headers={
            "Lambda-Runtime-Client-Context": json.dumps(
                {
                    "client": {"installation_id": "inst", "app_title": "title"},
                    "custom": {"k": "v"},
                    "env": {"platform": "x"},
                    "w3c": {"traceparent": "00-abc-01", "ignored": "y", "tracestate": 3},
                }
            ),
            "Lambda-Runtime-Cognito-Identity": json.dumps(
                {"cognitoIdentityId": "cid", "cognitoIdentityPoolId": "pool"}
            ),
            "Lambda-Runtime-Aws-Tenant-Id": "tenant-a",
        },
    )
    base = {
        "function_name": "fn",
        "function_version": "$LATEST",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "memory_limit_in_mb": "128",  # a string, as awslambdaric gives it
        "log_group_name": "/aws/lambda/fn",
        "log_stream_name": "2024/01/01/[$LATEST]abc",
    }
    assert run.api.result(plain).json() == {
        **base,
        "aws_request_id": "req-1",
        "identity": [None, None],
        "client_context": None,
        "w3c": {},
        "tenant_id": None,
    }
    assert run.api.result(rich).json() == {
        **base,
        "aws_request_id": "req-2",
        "identity": ["cid", "pool"],
        "client_context": [{"k": "v"}, {"platform": "x"}, "inst", "title"],
        "w3c": {"traceparent": "00-abc-01"},
        "tenant_id": "tenant-a",
    }
    assert run.finish() == 0


def test_remaining_time_follows_the_deadline(launcher: Launcher) -> None:
    launcher.write(
        "app.py",
        "import time\n"
        "def handler(event, context):\n"
        "    first = context.get_remaining_time_in_millis()\n"
        "    time.sleep(0.2)\n"
        "    return [first, context.get_remaining_time_in_millis()]\n",
    )
    run = launcher.start("app.handler")
    now_ms = int(time.time() * 1000)
    future = run.api.invoke({}, deadline_ms=now_ms + 10_000)
    past = run.api.invoke({}, deadline_ms=now_ms - 1_000)
    remaining = run.api.result(future).json()
    assert isinstance(remaining, list)
    first, second = remaining
    assert 5_000 < first <= 10_000
    assert 150 <= first - second < 5_000
    assert run.api.result(past).json() == [0, 0]
    assert run.finish() == 0


def test_log_lines_carry_the_request_id(launcher: Launcher) -> None:
    launcher.write(
        "app.py",
        "import logging\n"
        "logger = logging.getLogger()\n"
        "logger.setLevel(logging.INFO)\n"
        "logging.basicConfig(format='%(message)s')  # a no-op: the root has Lambda's handler\n"
        "def handler(event, context):\n"
        "    logger.info('hello %s', event['n'])\n"
        "    print('printed', event['n'])\n"
        "    return None\n",
    )
    run = launcher.start("app.handler")
    first = run.api.invoke({"n": 1})
    run.api.result(first)
    second = run.api.invoke({"n": 2})
    assert run.api.result(second).body == b"null"
    assert run.finish() == 0
    assert re.fullmatch(
        rf"\[INFO\]\t{TIMESTAMP}\t{first}\thello 1\nprinted 1\n"
        rf"\[INFO\]\t{TIMESTAMP}\t{second}\thello 2\nprinted 2\n",
        run.stdout,
    ), run.stdout


def test_logging_imported_only_inside_the_handler(launcher: Launcher) -> None:
    launcher.write(
        "app.py",
        "import sys\n"
        "def handler(event, context):\n"
        "    before = 'logging' in sys.modules\n"
        "    import logging\n"
        "    logging.warning('late')\n"
        "    return {'logging_before': before, 'http_client': 'http.client' in sys.modules}\n",
    )
    run = launcher.start("app.handler", env={"AWS_LAMBDA_LOG_LEVEL": "DEBUG"})
    request_id = run.api.invoke({})
    # The runtime imports neither logging nor http.client on its own: cold starts stay short.
    assert run.api.result(request_id).json() == {"logging_before": False, "http_client": False}
    assert run.finish() == 0
    assert re.fullmatch(rf"\[WARNING\]\t{TIMESTAMP}\t{request_id}\tlate\n", run.stdout)


def test_json_log_format(launcher: Launcher) -> None:
    launcher.write(
        "app.py",
        "import logging\n"
        "def handler(event, context):\n"
        "    logging.getLogger('mine').info({'structured': True})\n"
        "    logging.getLogger('mine').debug('hidden')\n"
        "    raise KeyError('k')\n",
    )
    run = launcher.start(
        "app.handler", env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    )
    request_id = run.api.invoke({})
    assert run.api.result(request_id).kind == "error"
    assert run.finish() == 0
    info, error = (json.loads(line) for line in run.stdout.splitlines())
    assert info == {
        "timestamp": info["timestamp"],
        "level": "INFO",
        "message": {"structured": True},
        "logger": "mine",
        "requestId": request_id,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(info["timestamp"]))
    assert error["level"] == "ERROR"
    assert (error["errorType"], error["errorMessage"]) == ("KeyError", "'k'")


def test_decimal_bytes_and_marshal_errors(launcher: Launcher) -> None:
    launcher.write(
        "app.py",
        "from decimal import Decimal\n"
        "def handler(event, context):\n"
        "    if event == 'decimal':\n"
        "        return {'price': Decimal('19.90'), 'qty': Decimal('3')}\n"
        "    if event == 'bytes':\n"
        "        return b'\\x01raw'\n"
        "    return {'bad': object()}\n",
    )
    run = launcher.start("app.handler")
    decimal_id = run.api.invoke("decimal")
    bytes_id = run.api.invoke("bytes")
    bad_id = run.api.invoke("bad")
    assert run.api.result(decimal_id).body == b'{"price": 19.90, "qty": 3}'
    raw = run.api.result(bytes_id)
    assert (raw.body, raw.headers["content-type"]) == (b"\x01raw", "application/unknown")
    bad = run.api.result(bad_id)
    assert bad.kind == "error"
    assert bad.headers["lambda-runtime-function-error-type"] == "Runtime.MarshalError"
    assert bad.json() == {
        "errorMessage": "Unable to marshal response: Object of type object is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": bad_id,
        "stackTrace": [],
    }
    assert run.finish() == 0


def test_unparseable_event_is_an_unmarshal_error(launcher: Launcher) -> None:
    launcher.write("app.py", "def handler(event, context):\n    return event\n")
    run = launcher.start("app.handler")
    request_id = run.api.invoke(raw=b"{not json")
    posted = run.api.result(request_id)
    assert posted.json()["errorType"] == "Runtime.UnmarshalError"  # type: ignore[index]
    assert str(posted.json()["errorMessage"]).startswith(  # type: ignore[index]
        "Unable to unmarshal input: Expecting property name enclosed in double quotes"
    )
    assert run.finish() == 0


@pytest.mark.parametrize("handler", ["lib/jobs/work.handler", "pkg.mod.handler"])
def test_nested_handler_paths(launcher: Launcher, handler: str) -> None:
    launcher.write("lib/jobs/work.py", "def handler(event, context):\n    return __name__\n")
    launcher.write("pkg/__init__.py", "")
    launcher.write("pkg/mod.py", "def handler(event, context):\n    return __name__\n")
    run = launcher.start(handler)
    request_id = run.api.invoke({})
    assert run.api.result(request_id).json() == handler.rsplit(".", 1)[0].replace("/", ".")
    assert run.finish() == 0


def test_trace_id_and_import_path(launcher: Launcher) -> None:
    layer = launcher.task_root.parent / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "shared.py").write_text("WHERE = 'layer'\n")
    # Files named like the runtime's own modules must be the function's.
    launcher.write("runtime.py", "WHERE = 'task'\n")
    launcher.write("payload.py", "WHERE = 'task'\n")
    launcher.write(
        "app.py",
        "import os, sys, runtime, payload, shared\n"
        "def handler(event, context):\n"
        "    return {'trace': os.environ.get('_X_AMZN_TRACE_ID'), 'path': sys.path[:2],\n"
        "            'mine': [runtime.WHERE, payload.WHERE, shared.WHERE]}\n",
    )
    run = launcher.start("app.handler", env={"LAMINA_LAYER_PATHS": str(layer)})
    traced = run.api.invoke({}, headers={"Lambda-Runtime-Trace-Id": "Root=1-abc"})
    untraced = run.api.invoke({})
    assert run.api.result(traced).json() == {
        "trace": "Root=1-abc",
        "path": [str(launcher.task_root), str(layer)],
        "mine": ["task", "task", "layer"],
    }
    untraced_result = run.api.result(untraced).json()
    assert untraced_result["trace"].startswith("Root=1-00000000-")  # type: ignore[index]
    assert run.finish() == 0


def test_exits_quietly_when_the_host_goes_away(launcher: Launcher) -> None:
    launcher.write("app.py", "def handler(event, context):\n    return 1\n")
    run = launcher.start("app.handler")
    run.api.result(run.api.invoke({}))
    assert run.finish() == 0
    assert (run.stdout, run.stderr) == ("", "")


def test_telemetry_fd_frames(launcher: Launcher) -> None:
    launcher.write(
        "app.py",
        "import logging\n"
        "def handler(event, context):\n"
        "    logging.warning('one\\ntwo')\n"
        "    raise ValueError('bad')\n",
    )
    read_fd, write_fd = os.pipe()
    try:
        run = launcher.start(
            "app.handler",
            pass_fds=(write_fd,),
            env={"_LAMBDA_TELEMETRY_LOG_FD": str(write_fd)},
        )
        os.close(write_fd)
        run.api.result(run.api.invoke({}, request_id="rid"))
        assert run.finish() == 0
        data = b""
        while chunk := os.read(read_fd, 65536):
            data += chunk
    finally:
        os.close(read_fd)
    frames = []
    while data:
        length = int.from_bytes(data[4:8], "big")
        frames.append((data[:4].hex(), data[16 : 16 + length].decode()))
        data = data[16 + length :]
    (warn_type, warning), (error_type, error) = frames
    assert warn_type == "a55a0003"  # text; per-level frame types only with a log level set
    assert re.fullmatch(rf"\[WARNING\]\t{TIMESTAMP}\trid\tone\ntwo\n", warning)
    assert error_type == "a55a0017"  # text, ERROR
    assert error.startswith("[ERROR] ValueError: bad\nTraceback (most recent call last):\n")
