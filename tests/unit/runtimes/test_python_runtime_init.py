"""Init failures: reported to /runtime/init/error with Lambda's types and messages,
logged as Lambda logs them, then the process exits 1."""

from __future__ import annotations

import re

import pytest
from tests.unit.runtimes.python_runtime_harness import BOOTSTRAP, Launcher

WARNING = re.compile(
    r"\[WARNING\]\t\d{4}-\d\d-\d\dT[\d:.]+Z\t\tLAMBDA_WARNING: Unhandled exception\. .*\r\n"
)


def _init_failure(launcher: Launcher, handler: str) -> tuple[dict[str, object], str, str]:
    """(posted body, error-type header, log) of an init that must fail."""
    run = launcher.start(handler)
    posted = run.api.init_error()
    assert run.proc.wait(timeout=30) == 1
    run.finish()
    assert run.stderr == ""
    body = posted.json()
    assert isinstance(body, dict)
    return body, posted.headers["lambda-runtime-function-error-type"], run.stdout


@pytest.mark.parametrize(
    ("handler", "files", "error_type", "message"),
    [
        (
            "app.handler",
            {},
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'app'",
        ),
        (
            "app.handler",
            {"app.py": "import not_installed_anywhere\n"},
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'not_installed_anywhere'",
        ),
        (
            "app.nope",
            {"app.py": "def handler(event, context):\n    pass\n"},
            "Runtime.HandlerNotFound",
            "Handler 'nope' missing on module 'app'",
        ),
        (
            "x",
            {},
            "Runtime.MalformedHandlerName",
            "Bad handler 'x': not enough values to unpack (expected 2, got 1)",
        ),
        (
            "sys.handler",
            {},
            "Runtime.BuiltInModuleConflict",
            "Cannot use built-in module sys as a handler module",
        ),
    ],
)
def test_init_fault(
    launcher: Launcher, handler: str, files: dict[str, str], error_type: str, message: str
) -> None:
    for name, source in files.items():
        launcher.write(name, source)
    body, header, log = _init_failure(launcher, handler)
    assert body == {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": "",
        "stackTrace": [],
    }
    assert header == error_type
    warning = WARNING.match(log)
    assert warning is not None, log
    assert log[warning.end() :] == (
        f"[ERROR] {error_type}: {message}\rTraceback (most recent call last):\n"
    )


def test_syntax_error(launcher: Launcher, python: str) -> None:
    path = launcher.write("app.py", "x = 1\n\ndef handler(event, context)\n    pass\n")
    body, header, log = _init_failure(launcher, "app.handler")
    assert header == body["errorType"] == "Runtime.UserCodeSyntaxError"
    # The parser's wording is the interpreter's own ("expected ':'" from 3.10 on).
    assert re.fullmatch(
        r"Syntax error in module 'app': .+ \(app\.py, line 3\)", str(body["errorMessage"])
    )
    assert body["stackTrace"] == [f'  File "{path}" Line 3\n    def handler(event, context)\n']
    assert f"[ERROR] Runtime.UserCodeSyntaxError: {body['errorMessage']}\r" in log


def test_exception_at_module_level(launcher: Launcher) -> None:
    path = launcher.write("app.py", "import os\nraise RuntimeError('no config')\n")
    body, header, log = _init_failure(launcher, "app.handler")
    assert header == body["errorType"] == "RuntimeError"
    assert body["errorMessage"] == "no config"
    trace = body["stackTrace"]
    assert isinstance(trace, list)
    # Like awslambdaric: the runtime's own frames are cut, importlib's are kept.
    assert "importlib" in trace[0]
    assert (
        trace[-1]
        == f"  File \"{path}\", line 2, in <module>\n    raise RuntimeError('no config')\n"
    )
    assert not any("_lamina_runtime" in frame or "runtimes/python" in frame for frame in trace)
    assert "[ERROR] RuntimeError: no config\rTraceback (most recent call last):\r" in log


def test_missing_runtime_api_address(launcher: Launcher) -> None:
    launcher.write("app.py", "def handler(event, context):\n    pass\n")
    run = launcher.start("app.handler", env={"AWS_LAMBDA_RUNTIME_API": ""})
    assert run.proc.wait(timeout=30) == 1
    run.finish()
    assert "AWS_LAMBDA_RUNTIME_API is not set" in run.stderr


def test_handler_given_on_the_command_line(launcher: Launcher) -> None:
    launcher.write("app.py", "def other(event, context):\n    return 'other'\n")
    run = launcher.start(
        "app.handler", command=[launcher.python, "-s", "-u", str(BOOTSTRAP), "app.other"]
    )
    assert run.api.result(run.api.invoke({})).json() == "other"
    assert run.finish() == 0
