"""The child side of the sandbox (runtimes/python/sandbox.py) carried out for real, as a
zygote child does it: `sandbox.py --exec PLAN argv` enters the plan, then execs.

Needs root and the namespaces (skipped elsewhere): these are the cases the function
API cannot reach yet — egress off with the Runtime API still reachable — and the exit
status a keeper must pass on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.environments.sandbox import RUNTIME_SANDBOX, RUNTIMES_DIR

PYTHON = str(Path(getattr(sys, "_base_executable", sys.executable)).resolve())
PREFIX = str(Path(PYTHON).parent.parent)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0, reason="needs root on Linux"
)


def _plan(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text("x = 1\n")
    staging = tmp_path / "root"
    staging.mkdir(exist_ok=True)
    binds = [["/usr", "/usr", False], ["/etc", "/etc", False], [PREFIX, PREFIX, False],
             [str(RUNTIMES_DIR), str(RUNTIMES_DIR), False]]  # fmt: skip
    links = [[os.readlink(p), p] for p in ("/bin", "/lib", "/lib64", "/sbin") if os.path.islink(p)]
    binds += [[p, p, False] for p in ("/bin", "/lib", "/lib64", "/sbin")
              if os.path.isdir(p) and not os.path.islink(p)]  # fmt: skip
    plan = {"namespaces": ["mount", "pid", "ipc", "uts"], "hostname": "sandbox", "uid": 65534,
            "gid": 65534, "binds": binds, "links": links, "staging": str(staging), "tmp_mb": 8,
            "cwd": "/var/task", "rlimits": {"nofile": [1024, 1024]}, "task": str(code)}  # fmt: skip
    plan.update(extra)
    return plan


def _run(plan: dict[str, Any], script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-s", str(RUNTIME_SANDBOX), "--exec", json.dumps(plan), PYTHON, "-c", script],
        capture_output=True, text=True, timeout=30, start_new_session=True,
    )  # fmt: skip


@pytest.fixture()
def pong() -> Iterator[int]:
    """A TCP server on the host's loopback that answers 'pong': the Runtime API's stand-in."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(100)
                conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join()
    server.close()


def test_the_function_runs_as_nobody_in_its_own_root(tmp_path: Path) -> None:
    script = (
        "import os, json, socket\n"
        "print(json.dumps({'uid': os.getuid(), 'pid': os.getpid(), 'cwd': os.getcwd(),\n"
        "    'root': sorted(os.listdir('/')), 'host': socket.gethostname(),\n"
        "    'procs': sorted(p for p in os.listdir('/proc') if p.isdigit())}))\n"
    )
    result = _run(_plan(tmp_path), script)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["uid"] == 65534 and seen["pid"] == 2 and seen["cwd"] == "/var/task"
    assert seen["host"] == "sandbox"
    assert seen["procs"] == ["1", "2"]
    assert "home" not in seen["root"] and "var" in seen["root"]


def test_the_keeper_ends_as_the_function_did(tmp_path: Path) -> None:
    assert _run(_plan(tmp_path), "raise SystemExit(7)").returncode == 7
    killed = _run(_plan(tmp_path), "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert killed.returncode == -signal.SIGKILL


def test_egress_off_reaches_the_runtime_api_and_nothing_else(tmp_path: Path, pong: int) -> None:
    other = socket.create_server(("127.0.0.1", 0))  # a host service the function must not reach
    try:
        script = (
            "import socket, sys\n"
            f"with socket.create_connection(('127.0.0.1', {pong}), timeout=5) as s:\n"
            "    s.sendall(b'ping'); print(s.recv(10).decode())\n"
            "for where in [('127.0.0.1', %d), ('10.255.255.1', 80)]:\n"
            "    try:\n"
            "        socket.create_connection(where, timeout=2); print('REACHED', where)\n"
            "    except OSError as exc:\n"
            "        print('blocked', type(exc).__name__)\n"
            "print(sorted(n for _, n in socket.if_nameindex()))\n"
        ) % other.getsockname()[1]
        plan = _plan(tmp_path, net_forward=f"127.0.0.1:{pong}")
        plan["namespaces"].append("net")
        result = _run(plan, script)
    finally:
        other.close()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pong"
    assert lines[1].startswith("blocked") and lines[2].startswith("blocked"), lines
    assert lines[3] == "['lo']"
