"""Python runtimes map to this machine's interpreters; custom runtimes run `bootstrap`,
and awslambdaric — unchanged, shipped in the zip — works through it."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.support import LaminaServer, create_function

VERSION = "import sys\ndef handler(event, context):\n    return '%d.%d' % sys.version_info[:2]\n"


def _available(server: LaminaServer) -> dict[str, str]:
    runtimes: dict[str, str] = httpx.get(f"{server.endpoint}/health").json()["runtimes"]
    return runtimes


@pytest.mark.parametrize("runtime", ["python3.10", "python3.11", "python3.12", "python3.13"])
def test_each_python_runtime_runs_its_interpreter(lamina_server: LaminaServer, lambda_client: Any, runtime: str) -> None:
    if runtime not in _available(lamina_server):
        pytest.skip(f"{runtime} has no interpreter on this machine")
    name = create_function(lambda_client, VERSION, runtime=runtime)
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert json.loads(response["Payload"].read()) == runtime.removeprefix("python")


def test_health_lists_runtimes(lamina_server: LaminaServer) -> None:
    runtimes = _available(lamina_server)
    assert "python3.11" in runtimes
    assert Path(runtimes["python3.11"]).exists()
    assert "provided.al2023" in runtimes


def test_custom_runtime_shell_bootstrap(lambda_client: Any) -> None:
    # A minimal custom runtime in POSIX sh + the host's Python for HTTP, as a user might write.
    bootstrap = f"""#!/bin/sh
exec {sys._base_executable} -c '
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse(); event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    body = json.dumps({{"echo": event, "handler": os.environ["_HANDLER"]}})
    conn.request("POST", "/2018-06-01/runtime/invocation/%s/response" % rid, body)
    conn.getresponse().read()
'
"""
    name = create_function(
        lambda_client, {"bootstrap": bootstrap}, runtime="provided.al2023", handler="my.handler",
    )  # fmt: skip
    # make_zip gives 0644 by default; the bootstrap must be executable
    from tests.integration.support import make_zip

    lambda_client.update_function_code(
        FunctionName=name, ZipFile=make_zip({"bootstrap": bootstrap}, modes={"bootstrap": 0o755})
    )
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
    response = lambda_client.invoke(FunctionName=name, Payload=b'{"a": 1}')
    assert json.loads(response["Payload"].read()) == {"echo": {"a": 1}, "handler": "my.handler"}


def _package_files(dist_name: str) -> dict[str, bytes]:
    dist = importlib.metadata.distribution(dist_name)
    files: dict[str, bytes] = {}
    for entry in dist.files or []:
        path = Path(str(dist.locate_file(entry)))
        if path.is_file() and "__pycache__" not in path.parts and ".dist-info" not in str(entry):
            files[str(entry)] = path.read_bytes()
    return files


def test_awslambdaric_shipped_in_the_zip_works_as_a_custom_runtime(lambda_client: Any) -> None:
    from tests.integration.support import make_zip

    files: dict[str, str | bytes] = {}
    for dist in ("awslambdaric", "simplejson", "snapshot-restore-py"):
        files.update(_package_files(dist))
    # The base interpreter, not the test venv: awslambdaric must come from the zip.
    files["bootstrap"] = (
        "#!/bin/sh\nexport PYTHONPATH=\"$LAMBDA_TASK_ROOT\"\n"
        f'exec {sys._base_executable} -s -m awslambdaric "$_HANDLER"\n'
    )
    files["app.py"] = (
        "import awslambdaric, os\n"
        "def handler(event, context):\n"
        "    print('via awslambdaric', awslambdaric.__file__)\n"
        "    return {'got': event, 'request_id': context.aws_request_id,\n"
        "            'from_zip': awslambdaric.__file__.startswith(os.environ['LAMBDA_TASK_ROOT'])}\n"
        "def fails(event, context):\n"
        "    raise KeyError('missing')\n"
    )
    modes = {"bootstrap": 0o755}
    name = create_function(lambda_client, {"app.py": "x=1"}, runtime="provided.al2023", Timeout=30)
    lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip(files, modes))
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
    response = lambda_client.invoke(FunctionName=name, Payload=b'{"k": "v"}', LogType="Tail")
    body = json.loads(response["Payload"].read())
    assert body["got"] == {"k": "v"}
    assert body["from_zip"] is True
    assert "FunctionError" not in response
    # warm second call through the same awslambdaric process
    again = json.loads(lambda_client.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert again["request_id"] != body["request_id"]

    lambda_client.update_function_configuration(FunctionName=name, Handler="app.fails")
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    error = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "KeyError"
