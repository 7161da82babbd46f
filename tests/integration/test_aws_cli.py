"""The AWS CLI, unchanged, against lamina (`--endpoint-url`).

PyPI carries AWS CLI v1: blobs are passed raw (no `--cli-binary-format`) and there is no
`logs tail`, which in v2 is built on FilterLogEvents — the call tested here."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.support import LaminaServer, create_function

AWS = str(Path(sys.executable).parent / "aws")


def aws(server: LaminaServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AWS, "--endpoint-url", server.endpoint, "--region", "us-east-1", *args],
        env=server.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_invoke_list_and_logs(lamina_server: LaminaServer, lambda_client: Any, tmp_path: Path) -> None:
    code = "def handler(event, context):\n    print('cli marker', event)\n    return {'ok': event['n']}\n"
    name = create_function(lambda_client, code)
    listed = aws(lamina_server, "lambda", "list-functions")
    assert listed.returncode == 0, listed.stderr
    assert name in {f["FunctionName"] for f in json.loads(listed.stdout)["Functions"]}

    out = tmp_path / "out.json"
    invoked = aws(
        lamina_server, "lambda", "invoke", "--function-name", name,
        "--payload", '{"n": 5}', str(out),
    )  # fmt: skip
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text()) == {"ok": 5}

    deadline = time.monotonic() + 10
    while True:
        found = aws(lamina_server, "logs", "filter-log-events", "--log-group-name", f"/aws/lambda/{name}")
        assert found.returncode == 0, found.stderr
        messages = [e["message"] for e in json.loads(found.stdout)["events"]]
        if any(m.startswith("REPORT RequestId") for m in messages) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert any("cli marker {'n': 5}" in m for m in messages)
    assert any(m.startswith("REPORT RequestId") for m in messages)

    missing = aws(lamina_server, "lambda", "get-function", "--function-name", "no-such-fn")
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr
