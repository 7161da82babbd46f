"""Integration support: a real `lamina serve` subprocess on a free loopback port.

Tests drive it with real clients (boto3, the AWS CLI, awslambdaric, the openai and
anthropic SDKs); nothing of lamina's own is mocked.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

ACCESS_KEY = "LKIATESTROOTKEY00001"
SECRET_KEY = "test-secret-key-for-integration-tests"
ROLE = "arn:aws:iam::000000000000:role/lambda-role"
LAMINA = str(Path(sys.executable).parent / "lamina")


LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def ensure_execution_role(iam: Any, name: str = "lambda-role") -> str:
    """The execution role the tests' functions use: Lambda requires one that exists and
    trusts lambda.amazonaws.com."""
    try:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"])
    except iam.exceptions.EntityAlreadyExistsException:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LaminaServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    ensure_role: bool = True  # create the execution role the tests' functions use
    access_key_id: str = ACCESS_KEY
    secret_access_key: str = SECRET_KEY

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            LAMINA_ACCESS_KEY_ID=self.access_key_id,
            LAMINA_SECRET_ACCESS_KEY=self.secret_access_key,
            LAMINA_ENDPOINT=self.endpoint,
            LAMINA_DATA_DIR=str(self.data_dir),
            AWS_ACCESS_KEY_ID=self.access_key_id,
            AWS_SECRET_ACCESS_KEY=self.secret_access_key,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=self.endpoint,
            LAMINA_ASYNC_RETRY_BASE_S="0.2",
            # Many tests watch functions through host files and os.getpid(), which the
            # sandbox forbids (and makes 2 in every environment): off unless asked for.
            # tests/integration/test_sandbox*.py start servers of their own with it on.
            LAMINA_SANDBOX=os.environ.get("LAMINA_SANDBOX", "1"),
        )
        env.update(self.extra_env)
        return env

    def start(self) -> LaminaServer:
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [LAMINA, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir), *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"lamina serve exited with {self.process.returncode}: {self.log_text()}")
            try:
                if httpx.get(f"{self.endpoint}/health", timeout=1).status_code == 200:
                    if self.ensure_role:
                        ensure_execution_role(self.client("iam"))
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"lamina serve did not become healthy: {self.log_text()}")

    def log_text(self) -> str:
        path = self.data_dir.parent / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill9(self) -> None:
        """Kill the server and everything it started, as a crash would."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def client(self, service: str = "lambda", **kwargs: Any) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=kwargs.pop("access_key", self.access_key_id),
            aws_secret_access_key=kwargs.pop("secret_key", self.secret_access_key),
            config=Config(retries={"max_attempts": 0}, read_timeout=120, **kwargs),
        )


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


_counter = iter(range(1_000_000))


def unique_name(prefix: str = "fn") -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{int(time.time() * 1000) % 100000}"


def create_function(
    client: Any,
    code: str | dict[str, str | bytes],
    name: str | None = None,
    handler: str = "app.handler",
    runtime: str = "python3.11",
    wait: bool = True,
    **extra: Any,
) -> str:
    name = name or unique_name()
    files = {"app.py": code} if isinstance(code, str) else code
    client.create_function(
        FunctionName=name, Runtime=runtime, Handler=handler,
        Code={"ZipFile": make_zip(files)}, **{"Role": ROLE, **extra},
    )  # fmt: skip
    if wait:
        client.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
        )
    return name


def log_messages(server: LaminaServer, function: str, until: Any = None, timeout: float = 30.0) -> list[str]:
    """The function's log messages (CloudWatch Logs API), polled until `until(messages)`.

    Functions run sandboxed, so tests observe what they did through their logs, as a
    user would, never through files on the host."""
    logs = server.client("logs")
    deadline = time.monotonic() + timeout
    while True:
        messages: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": f"/aws/lambda/{function}"}
        try:
            while True:
                page = logs.filter_log_events(**kwargs)
                messages.extend(e["message"].rstrip("\n") for e in page["events"])
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except logs.exceptions.ResourceNotFoundException:
            messages = []
        if until is None or until(messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.1)


def process_tree(root: int) -> list[tuple[int, str, str]]:
    """(pid, state, start time) of every process below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        stats[int(entry.name)] = (fields[0], fields[19])
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append((child, *stats[child]))
            stack.append(child)
    return found
