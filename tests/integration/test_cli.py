"""The `lamina` client commands as a user runs them, against a real `lamina serve`."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from tests.integration.support import LAMINA, LaminaServer, unique_name

RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"

HANDLER = """
import os
import tinydep

def handler(event, context):
    print("handled", event.get("n"))
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"value": tinydep.VALUE, "greeting": os.environ.get("GREETING"), "event": event}
"""


def lamina(
    server: LaminaServer, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAMINA, *args], env=server.env, capture_output=True, text=True, timeout=timeout
    )


def make_wheel(folder: Path) -> Path:
    """A pure-Python wheel on disk, so `pip install` in deploy needs no network."""
    files = {
        "tinydep/__init__.py": b"VALUE = 42\n",
        "tinydep-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n",
        "tinydep-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{name},sha256="
        + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        + f",{len(data)}"
        for name, data in files.items()
    ]
    files["tinydep-1.0.dist-info/RECORD"] = (
        "\n".join([*record, "tinydep-1.0.dist-info/RECORD,,"]) + "\n"
    ).encode()
    wheel = folder / "tinydep-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


@pytest.fixture(scope="module")
def deployed(lamina_server: LaminaServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("fn")
    (folder / "app.py").write_text(HANDLER)
    wheel = make_wheel(tmp_path_factory.mktemp("wheels"))
    (folder / "requirements.txt").write_text(f"{wheel}\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    name = unique_name("cli")
    result = lamina(
        lamina_server, "deploy", str(folder), "--name", name, "--runtime", RUNTIME,
        "--handler", "app.handler", "--memory", "256", "--timeout", "10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"FunctionArn: arn:aws:lambda:us-east-1:000000000000:function:{name}" in result.stdout
    assert "State: Active" in result.stdout
    return name


def test_invoke_prints_the_response(lamina_server: LaminaServer, deployed: str) -> None:
    result = lamina(lamina_server, "invoke", deployed, "--payload", '{"n": 1}')
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body == {"value": 42, "greeting": None, "event": {"n": 1}}
    assert result.stdout.startswith("{\n  ")  # pretty-printed


def test_invoke_log_tail_and_function_error(lamina_server: LaminaServer, deployed: str) -> None:
    result = lamina(lamina_server, "invoke", deployed, "--payload", '{"n": 2}', "--log")
    assert result.returncode == 0, result.stderr
    assert "START RequestId:" in result.stderr and "handled 2" in result.stderr
    assert "REPORT RequestId:" in result.stderr
    failed = lamina(lamina_server, "invoke", deployed, "--payload", '{"fail": true}')
    assert failed.returncode == 1
    error = json.loads(failed.stdout)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "asked to fail")
    assert "Traceback" not in failed.stderr


def test_redeploy_updates_code_and_configuration(
    lamina_server: LaminaServer, deployed: str, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(
        "import os\ndef handler(event, context):\n    return os.environ['GREETING']\n"
    )
    result = lamina(
        lamina_server, "deploy", str(tmp_path), "--name", f"{deployed}-v2", "--runtime",
        RUNTIME, "--handler", "app.handler", "--env", "GREETING=first",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (tmp_path / "app.py").write_text(
        "import os\ndef handler(event, context):\n    return 'v2 ' + os.environ['GREETING']\n"
    )
    result = lamina(
        lamina_server, "deploy", str(tmp_path), "--name", f"{deployed}-v2", "--runtime",
        RUNTIME, "--handler", "app.handler", "--env", "GREETING=hi", "--memory", "512",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "LastUpdateStatus: Successful" in result.stdout
    invoked = lamina(lamina_server, "invoke", f"{deployed}-v2")
    assert json.loads(invoked.stdout) == "v2 hi"
    config = lamina_server.client("lambda").get_function_configuration(
        FunctionName=f"{deployed}-v2"
    )
    assert config["MemorySize"] == 512


def test_logs_prints_the_function_logs(lamina_server: LaminaServer, deployed: str) -> None:
    lamina(lamina_server, "invoke", deployed, "--payload", '{"n": 31}')
    deadline = time.monotonic() + 10
    while True:
        result = lamina(lamina_server, "logs", deployed, "--since", "1h")
        assert result.returncode == 0, result.stderr
        if "handled 31" in result.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    lines = result.stdout.splitlines()
    assert any("START RequestId:" in line for line in lines)
    assert any("handled 31" in line for line in lines)
    stamps = [line.split(" ", 1)[0] for line in lines if line[:4].isdigit()]
    assert stamps == sorted(stamps)  # in time order
    latest = lamina(lamina_server, "logs", deployed, "--qualifier", "$LATEST")
    assert "handled 31" in latest.stdout
    other = lamina(lamina_server, "logs", deployed, "--qualifier", "7")
    assert other.returncode == 0 and other.stdout == ""


def test_logs_follow_prints_new_events_until_interrupted(
    lamina_server: LaminaServer, deployed: str
) -> None:
    follower = subprocess.Popen(
        [LAMINA, "logs", deployed, "--follow", "--since", "1s"],
        env=lamina_server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.5)
        lamina(lamina_server, "invoke", deployed, "--payload", '{"n": 4242}')
        lines: queue.Queue[str] = queue.Queue()
        assert follower.stdout is not None
        stdout = follower.stdout
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        deadline = time.monotonic() + 15
        seen = ""
        while "handled 4242" not in seen and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                seen += lines.get(timeout=0.2)
        assert "handled 4242" in seen
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_ls_and_runtimes(lamina_server: LaminaServer, deployed: str) -> None:
    listed = lamina(lamina_server, "ls", timeout=60)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if deployed in line)
    assert RUNTIME in row and "256" in row and "Active" in row
    runtimes = lamina(lamina_server, "runtimes", timeout=60)
    assert runtimes.returncode == 0, runtimes.stderr
    assert RUNTIME in runtimes.stdout


def test_server_refusals_are_one_line_errors(lamina_server: LaminaServer, tmp_path: Path) -> None:
    missing = lamina(lamina_server, "invoke", "no-such-function")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ResourceNotFoundException: ")
    (tmp_path / "app.py").write_text("def handler(e, c): pass\n")
    bad = lamina(
        lamina_server, "deploy", str(tmp_path), "--name", unique_name("bad"),
        "--runtime", "python2.7", "--handler", "app.handler",
    )  # fmt: skip
    assert bad.returncode == 1
    assert "error: InvalidParameterValueException: " in bad.stderr
    assert "Traceback" not in bad.stderr


def test_credentials_come_from_the_data_dir(
    lamina_server: LaminaServer, deployed: str, tmp_path: Path
) -> None:
    """With no key variables the CLI reads the credentials.json `lamina serve` writes."""
    data_dir = tmp_path / "xdg" / "lamina"
    data_dir.mkdir(parents=True)
    (data_dir / "credentials.json").write_text(
        json.dumps(
            {
                "access_key_id": lamina_server.access_key_id,
                "secret_access_key": lamina_server.secret_access_key,
            }
        )
    )
    env = {k: v for k, v in lamina_server.env.items() if not k.startswith(("LAMINA_", "AWS_"))}
    env.update(LAMINA_ENDPOINT=lamina_server.endpoint, XDG_DATA_HOME=str(tmp_path / "xdg"))
    result = subprocess.run([LAMINA, "ls"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert deployed in result.stdout
    env["XDG_DATA_HOME"] = str(tmp_path / "empty")
    refused = subprocess.run([LAMINA, "ls"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and refused.stderr.startswith("error: no credentials")


def test_deploy_installs_requirements_for_another_python(
    lamina_server: LaminaServer, tmp_path: Path
) -> None:
    """A runtime other than the CLI's Python gets its packages from its own interpreter."""
    available = lamina(lamina_server, "runtimes", timeout=60).stdout
    other = next(
        (r for r in ("python3.12", "python3.13", "python3.10") if r in available and r != RUNTIME),
        None,
    )
    if other is None:
        pytest.skip("no second Python runtime on this machine")
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(
        "import sys, tinydep\n"
        "def handler(event, context):\n"
        "    return [tinydep.VALUE, '%d.%d' % sys.version_info[:2]]\n"
    )
    wheel = make_wheel(tmp_path)
    (tmp_path / "fn" / "requirements.txt").write_text(f"{wheel}\n")
    name = unique_name("other")
    deployed = lamina(
        lamina_server, "deploy", str(tmp_path / "fn"), "--name", name, "--runtime", other,
        "--handler", "app.handler",
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    invoked = lamina(lamina_server, "invoke", name)
    assert json.loads(invoked.stdout) == [42, other.removeprefix("python")]
