"""A fake Lambda Runtime API and a launcher for the built-in Python runtime.

A module of its own (not conftest.py) so tests can import it by a unique name.

The runtime runs as a real subprocess (`python -s -u bootstrap.py`) against a
stdlib HTTP server on loopback that hands out queued events and records what the
runtime posts back, under every interpreter this machine has for it.
"""

from __future__ import annotations

import glob
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import lamina

BOOTSTRAP = Path(lamina.__file__).parent / "runtimes" / "python" / "bootstrap.py"
PREFIX = "/2018-06-01/runtime"
WAIT_S = 30.0


def interpreters() -> list[object]:
    """The test venv's python, and python3.10/3.12/3.13 where installed."""
    params: list[object] = [pytest.param(sys.executable, id="venv")]
    for minor in ("3.10", "3.12", "3.13"):
        found = sorted(glob.glob(f"/root/.pyenv/versions/{minor}*/bin/python{minor}"))
        if found:
            params.append(pytest.param(found[-1], id=f"py{minor}"))
        else:
            reason = f"python{minor} is not installed"
            params.append(pytest.param(None, id=f"py{minor}", marks=pytest.mark.skip(reason)))
    return params


@dataclass
class Posted:
    kind: str  # "response" or "error"
    body: bytes
    headers: dict[str, str]

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class FakeRuntimeApi:
    """Queued invocations out, posted results in; one server per test."""

    pending: queue.Queue[tuple[str, bytes, dict[str, str]] | None] = field(
        default_factory=queue.Queue
    )
    posted: dict[str, Posted] = field(default_factory=dict)
    init_errors: list[Posted] = field(default_factory=list)
    connections: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self.server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self._closed = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(
        self,
        event: object = None,
        *,
        raw: bytes | None = None,
        request_id: str | None = None,
        deadline_ms: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        request_id = request_id or str(uuid.uuid4())
        all_headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(
                deadline_ms if deadline_ms is not None else int(time.time() * 1000) + 30_000
            ),
            "Lambda-Runtime-Invoked-Function-Arn": (
                "arn:aws:lambda:us-east-1:000000000000:function:fn"
            ),
            "Lambda-Runtime-Trace-Id": f"Root=1-00000000-{request_id[:24]};Sampled=0",
        }
        all_headers.update(headers or {})
        self.pending.put(
            (request_id, raw if raw is not None else json.dumps(event).encode(), all_headers)
        )
        return request_id

    def result(self, request_id: str, timeout: float = WAIT_S) -> Posted:
        with self.changed:
            if not self.changed.wait_for(lambda: request_id in self.posted, timeout):
                raise AssertionError(f"no result posted for {request_id}")
            return self.posted[request_id]

    def init_error(self, timeout: float = WAIT_S) -> Posted:
        with self.changed:
            if not self.changed.wait_for(lambda: bool(self.init_errors), timeout):
                raise AssertionError("no init error posted")
            return self.init_errors[0]

    def close(self) -> None:
        """Goes away as a host would: no listener, and the long poll cut."""
        if self._closed:
            return
        self._closed = True
        self.server.shutdown()
        self.server.server_close()
        for _ in range(4):
            self.pending.put(None)

    def _record(self, path: str, body: bytes, headers: dict[str, str]) -> bool:
        with self.changed:
            if path == f"{PREFIX}/init/error":
                self.init_errors.append(Posted("error", body, headers))
            else:
                parts = path[len(PREFIX) :].split("/")  # ["", "invocation", id, kind]
                if len(parts) != 4 or parts[1] != "invocation":
                    return False
                self.posted[parts[2]] = Posted(parts[3], body, headers)
            self.changed.notify_all()
        return True


def _make_handler(api: FakeRuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes

        def setup(self) -> None:
            super().setup()
            with api.changed:
                api.connections += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != f"{PREFIX}/invocation/next":
                self._reply(404, b'{"errorType":"NotFound"}')
                return
            item = api.pending.get()
            if item is None:  # the host went away: cut the connection, answer nothing
                self.close_connection = True
                return
            _, body, headers = item
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            if api._record(self.path, body, headers):
                self._reply(202, b'{"status":"OK"}')
            else:
                self._reply(404, b'{"errorType":"NotFound"}')

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@dataclass
class RuntimeProcess:
    api: FakeRuntimeApi
    proc: subprocess.Popen[bytes]
    stdout: str = ""
    stderr: str = ""

    def finish(self, timeout: float = WAIT_S) -> int:
        """Ends the host side, waits for the runtime to exit; returns its exit code."""
        self.api.close()
        out, err = self.proc.communicate(timeout=timeout)
        self.stdout, self.stderr = out.decode(), err.decode()
        return self.proc.returncode


class Launcher:
    def __init__(self, python: str, task_root: Path) -> None:
        self.python = python
        self.task_root = task_root
        self.started: list[RuntimeProcess] = []

    def write(self, relative: str, source: str) -> Path:
        path = self.task_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        return path

    def start(
        self,
        handler: str,
        *,
        command: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
    ) -> RuntimeProcess:
        """Starts bootstrap.py (or `command`, e.g. awslambdaric) against a new fake API."""
        api = FakeRuntimeApi()
        environ = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]abc",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        environ.update(env or {})
        proc = subprocess.Popen(
            command or [self.python, "-s", "-u", str(BOOTSTRAP)],
            env=environ,
            cwd=self.task_root,
            stdin=subprocess.DEVNULL,
            pass_fds=pass_fds,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        process = RuntimeProcess(api, proc)
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            process.api.close()
            if process.proc.poll() is None:
                process.proc.kill()
            process.proc.communicate()
