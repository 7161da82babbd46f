"""Parity with awslambdaric: the same function, run by awslambdaric and by lamina's
runtime against the same fake Runtime API, must post the same bodies and write the
same log output (timestamps and request ids aside)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from tests.unit.runtimes.python_runtime_harness import Launcher, RuntimeProcess

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("awslambdaric") is None, reason="awslambdaric is not installed"
)

APP = """\
import decimal, logging
logger = logging.getLogger()
def handler(event, context):
    print("event", event)
    logger.warning("warned %s", event)
    if event == "fail":
        raise ValueError("boom")
    if event == "decimal":
        return {"d": decimal.Decimal("1.10"), "n": decimal.Decimal("NaN"), "u": "é✓"}
    if event == "set":
        return {1, 2}
    c = context
    return [c.function_name, c.memory_limit_in_mb, repr(c.identity), repr(c.client_context),
            c.w3c(), c.tenant_id, c.get_remaining_time_in_millis() > 0]
"""
CLIENT_CONTEXT = {"client": {"installation_id": "i"}, "custom": {"a": 1}, "w3c": {"baggage": "b"}}
EVENTS: list[tuple[object, dict[str, str]]] = [
    ("plain", {}),
    ("fail", {}),
    ("decimal", {}),
    ("set", {}),
    (
        "context",
        {
            "Lambda-Runtime-Client-Context": json.dumps(CLIENT_CONTEXT),
            "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "c"}),
            "Lambda-Runtime-Aws-Tenant-Id": "t",
        },
    ),
    ("bad client context", {"Lambda-Runtime-Client-Context": "{"}),
]
# awslambdaric's native client logs this when the host goes away; lamina exits quietly.
RIC_EXIT_LINE = re.compile(r"\[ERROR\] \[\d+\] LAMBDA_RUNTIME Failed to get next invocation.*\n")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")


def _observe(
    task_root: Path,
    handler: str,
    events: list[tuple[object, dict[str, str]]],
    ric: bool,
    **env: str,
) -> tuple[list[object], str]:
    launcher = Launcher(sys.executable, task_root)
    try:
        command = [sys.executable, "-m", "awslambdaric", handler] if ric else None
        run: RuntimeProcess = launcher.start(handler, command=command, env=env)
        seen: list[object] = []
        ids = [run.api.invoke(event, headers=headers) for event, headers in events]
        for request_id in ids:
            posted = run.api.result(request_id)
            headers = {k: v for k, v in posted.headers.items() if "xray" in k}
            seen.append((posted.kind, posted.body.decode().replace(request_id, "RID"), headers))
        if not events:
            posted = run.api.init_error()
            seen.append(
                (posted.body.decode(), posted.headers["lambda-runtime-function-error-type"])
            )
        run.finish()
        log = RIC_EXIT_LINE.sub("", run.stdout)
        for request_id in ids:
            log = log.replace(request_id, "RID")
        return seen, TIMESTAMP.sub("TS", log)
    finally:
        launcher.close()


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
@pytest.mark.parametrize("execution_env", ["AWS_Lambda_python3.11", "AWS_Lambda_python3.12"])
def test_invocations_match_awslambdaric(
    tmp_path: Path, log_format: str, execution_env: str
) -> None:
    (tmp_path / "app.py").write_text(APP)
    env = {"AWS_LAMBDA_LOG_FORMAT": log_format, "AWS_EXECUTION_ENV": execution_env}
    expected = _observe(tmp_path, "app.handler", EVENTS, ric=True, **env)
    assert _observe(tmp_path, "app.handler", EVENTS, ric=False, **env) == expected


@pytest.mark.parametrize(
    ("handler", "source"),
    [
        ("app.handler", "raise KeyError('at import')\n"),
        ("app.handler", "def handler(event, context)\n    pass\n"),
        ("app.handler", "import missing_dependency\n"),
        ("app.other", "def handler(event, context):\n    pass\n"),
        ("app", ""),
    ],
)
def test_init_errors_match_awslambdaric(tmp_path: Path, handler: str, source: str) -> None:
    (tmp_path / "app.py").write_text(source)
    expected = _observe(tmp_path, handler, [], ric=True)
    assert _observe(tmp_path, handler, [], ric=False) == expected
