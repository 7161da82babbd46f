"""Shared pieces of the cold-start and peer benchmarks (bench/cold_start.py, bench/peers.py).

- `Lamina`: a `lamina serve` of its own (own port, data dir and settings) per section;
- `SignedInvoker`: a raw SigV4-signed Invoke client — botocore's SigV4Auth on an
  AWSRequest, sent over a keep-alive `http.client` connection, signed before the clock
  starts — so a figure is lamina's, not boto3's (~1 ms of client overhead per call);
- `burst`: N simultaneous signed invokes over N pre-opened asyncio connections;
- `FakeRuntimeApi`: a minimal Lambda Runtime API (stdlib http.server) that hands out
  events and records when responses arrive, for timing fresh awslambdaric launches;
- memory figures of process trees from /proc (RSS, PSS, USS via smaps_rollup);
- `Results`: each subcommand updates its own section of a results file (JSON beside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.metadata
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
KEY, SECRET = "LKIABENCHMARK0000001", "bench-secret"
REGION = "us-east-1"
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::000000000000:role/bench"
VENV_BIN = Path(sys.executable).parent
# The distributions a zip needs for `import boto3` to come from the zip itself.
BOTO3_DISTS = ("boto3", "botocore", "jmespath", "s3transfer", "python-dateutil", "urllib3", "six")


# ---------------------------------------------------------------- numbers


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": float(len(values)),
        "p50": statistics.median(values) if values else float("nan"),
        "p99": pct(values, 0.99),
        "min": min(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
    }


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    mem_gb = meminfo()["MemTotal"] / 1024 / 1024
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GB RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average at the end {load} (the machine "
        "is shared: compare ratios within a run, not absolute figures across runs)"
    )


def meminfo() -> dict[str, int]:
    """/proc/meminfo in kB."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        out[name] = int(rest.split()[0])
    return out


# ---------------------------------------------------------------- function packages


def make_zip(files: Mapping[str, str | bytes], compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compress, compresslevel=1) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o644 | 0o100000) << 16
            info.compress_type = compress
            archive.writestr(info, content)
    return buffer.getvalue()


def dist_files(dists: Sequence[str]) -> dict[str, bytes]:
    """The installed files of distributions (no bytecode, no metadata), by zip path."""
    files: dict[str, bytes] = {}
    for name in dists:
        dist = importlib.metadata.distribution(name)
        for entry in dist.files or ():
            path = str(entry)
            if path.endswith(".pyc") or ".dist-info/" in path or path.startswith(".."):
                continue
            if "__pycache__" in path or path.startswith("bin/"):
                continue
            files[path] = Path(str(dist.locate_file(entry))).read_bytes()
    return files


# ---------------------------------------------------------------- lamina


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Lamina:
    """A `lamina serve` of its own for one section: `with Lamina(env) as lamina: ...`."""

    def __init__(self, env: Mapping[str, str] | None = None, log: Path | None = None) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.data = Path(tempfile.mkdtemp(prefix="lamina-bench-"))
        self._env = dict(os.environ, LAMINA_ACCESS_KEY_ID=KEY, LAMINA_SECRET_ACCESS_KEY=SECRET)
        self._env.update(env or {})
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Lamina:
        out = open(self._log, "wb") if self._log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "lamina"), "serve", "--port", str(self.port), "--data-dir", str(self.data)],
            env=self._env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"lamina exited with {self.proc.returncode}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            time.sleep(0.05)
        else:
            raise SystemExit("lamina did not come up")
        self.client = boto3.client(
            "lambda", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            config=Config(retries={"max_attempts": 0}, read_timeout=300, max_pool_connections=50),
        )  # fmt: skip
        self.role = self._execution_role()
        # the zygote starts in the background: wait for it so the first sample is fair
        self.wait_zygote()
        self.wait_workers()
        return self

    def wait_workers(self, timeout: float = 60) -> None:
        """With LAMINA_WORKERS, the workers start after the primary: wait for them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/health")
            workers = json.loads(conn.getresponse().read()).get("workers")
            conn.close()
            if workers is None or workers["ready"] == workers["expected"]:
                return
            time.sleep(0.1)
        raise SystemExit("lamina's workers did not come up")

    def _execution_role(self) -> str:
        """An execution role that trusts lambda.amazonaws.com, where lamina checks roles."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }],
        }  # fmt: skip
        iam = boto3.client(
            "iam", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=KEY,
            aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 0}),
        )  # fmt: skip
        try:
            role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument=json.dumps(trust))
            return str(role["Role"]["Arn"])
        except Exception:  # a lamina without IAM takes any role ARN
            return ROLE

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def servers(self) -> list[int]:
        """The serving processes: the primary and its workers (LAMINA_WORKERS)."""
        workers = [p for p in children(self.pid) if "lamina.serving.worker" in cmdline(p)]
        return [self.pid, *workers]

    def zygotes(self) -> list[int]:
        return [p for s in self.servers() for p in children(s) if "zygote" in cmdline(p)]

    def env_roots(self) -> list[int]:
        """One process per environment (or SnapStart template), whatever the launch path
        and whichever serving process started it: the serving processes' children other
        than zygotes and workers (exec'd, e.g. through bwrap) and the zygotes' children
        (forked)."""
        servers = self.servers()
        zygotes = set(self.zygotes())
        roots = [p for s in servers for p in children(s) if p not in zygotes and p not in servers]
        return roots + [c for z in zygotes for c in children(z)]

    def env_processes(self) -> list[int]:
        """Every process of every environment (sandboxed, one may be several)."""
        roots = self.env_roots()
        return roots + [d for r in roots for d in descendants(r)]

    def wait_zygote(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.zygotes():
                time.sleep(0.5)  # preloading (boto3) takes a moment after the process exists
                return
            time.sleep(0.05)

    def create(
        self, name: str, zip_bytes: bytes, handler: str = "app.handler", **extra: Any
    ) -> None:
        self.client.create_function(
            FunctionName=name, Runtime=RUNTIME, Role=self.role, Handler=handler,
            Code={"ZipFile": zip_bytes}, **extra,
        )  # fmt: skip
        self.client.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 6000}
        )

    def publish(self, name: str) -> str:
        version = self.client.publish_version(FunctionName=name)["Version"]
        self.client.get_waiter("published_version_active").wait(
            FunctionName=f"{name}:{version}", WaiterConfig={"Delay": 0.05, "MaxAttempts": 6000}
        )
        return str(version)

    def environments(self) -> list[dict[str, Any]] | None:
        """lamina's live environments (root-only /_lamina/environments); None without it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(
                "GET", "/_lamina/environments", headers={"Authorization": f"Bearer {SECRET}"}
            )
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            return None
        return list(json.loads(body)["environments"])

    def wait_no_environments(
        self, function: str, version: str = "$LATEST", timeout: float = 10
    ) -> bool:
        """Until `function:version` has no live environment (the reaper took it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.environments()
            if rows is None:  # no such endpoint: give the reaper time instead
                time.sleep(1.0)
                return True
            if not any(r["function"] == function and r["version"] == version for r in rows):
                return True
            time.sleep(0.05)
        return False

    def invoker(self) -> SignedInvoker:
        return SignedInvoker("127.0.0.1", self.port)


def sign(
    host: str, port: int, name: str, payload: bytes, qualifier: str | None = None
) -> tuple[str, dict[str, str]]:
    path = f"/2015-03-31/functions/{name}/invocations"
    if qualifier:
        path += f"?Qualifier={qualifier}"
    request = AWSRequest(
        method="POST", url=f"http://{host}:{port}{path}", data=payload,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    SigV4Auth(Credentials(KEY, SECRET), "lambda", REGION).add_auth(request)
    return path, dict(request.headers.items())


class SignedInvoker:
    """Invoke over one keep-alive connection; the request is signed before timing starts."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=300)

    def invoke(
        self, name: str, payload: bytes = b"{}", qualifier: str | None = None
    ) -> tuple[float, int, bytes, dict[str, str]]:
        """(milliseconds, status, body, headers)."""
        path, headers = sign(self.host, self.port, name, payload, qualifier)
        for attempt in (0, 1):
            try:
                start = time.perf_counter()
                self.conn.request("POST", path, body=payload, headers=headers)
                response = self.conn.getresponse()
                body = response.read()
                elapsed = (time.perf_counter() - start) * 1000
                return elapsed, response.status, body, dict(response.getheaders())
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


async def burst(
    host: str,
    port: int,
    requests: Sequence[tuple[str, dict[str, str], bytes]],
    timeout: float = 300,
) -> tuple[float, list[tuple[float, int, bytes]]]:
    """Send all requests at once over their own pre-opened connections.

    Returns (seconds from the first send to the last response, [(done_s, status, body)]);
    a function error (X-Amz-Function-Error) is reported as status -200."""
    conns = []
    for _ in requests:
        conns.append(await asyncio.open_connection(host, port))
    blobs = []
    for path, headers, body in requests:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        blobs.append(head.encode() + body)

    async def one(i: int, start: float) -> tuple[float, int, bytes]:
        reader, writer = conns[i]
        try:
            writer.write(blobs[i])
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout)
        except (TimeoutError, OSError) as exc:
            return time.perf_counter() - start, 0, repr(exc).encode()
        finally:
            writer.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        if b"x-amz-function-error" in head.lower():
            status = -status
        return time.perf_counter() - start, status, rest

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i, start) for i in range(len(requests))))
    return time.perf_counter() - start, list(results)


# ---------------------------------------------------------------- processes and memory


def children(pid: int) -> list[int]:
    out = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [
                    int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    return ""


def memory(pid: int) -> dict[str, int]:
    """kB: Rss, Pss, and Uss (Private_Clean + Private_Dirty) from smaps_rollup."""
    fields: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name] = int(parts[0])
    return {
        "rss": fields.get("Rss", 0),
        "pss": fields.get("Pss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


def total_memory(pids: Sequence[int]) -> dict[str, int]:
    total = {"rss": 0, "pss": 0, "uss": 0}
    for pid in pids:
        for k, v in memory(pid).items():
            total[k] += v
    return total


# ---------------------------------------------------------------- a fake Runtime API


class FakeRuntimeApi:
    """The Lambda Runtime API, enough for awslambdaric: `/next` hands out the events
    queued with `give()` (later calls wait), responses are time-stamped."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: list[bytes] = []
        self.responses: list[tuple[float, str, bytes]] = []
        self.errors: list[bytes] = []
        self._closed = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(
                self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if not self.path.endswith("/runtime/invocation/next"):
                    return self._reply(404)
                with api._cond:
                    while not api._events and not api._closed:
                        api._cond.wait()
                    if api._closed:
                        return self._reply(500)
                    event = api._events.pop(0)
                request_id = str(uuid.uuid4())
                self._reply(200, event, {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 300_000),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:bench",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    "Content-Type": "application/json",
                })  # fmt: skip
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.perf_counter()
                with api._cond:
                    if self.path.endswith("/response"):
                        api.responses.append((now, self.path, body))
                    else:
                        api.errors.append(self.path.encode() + b" " + body)
                    api._cond.notify_all()
                self._reply(202, b'{"status":"OK"}')

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a killed runtime resets its connection: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def give(self, events: Sequence[bytes]) -> None:
        with self._cond:
            self._events.extend(events)
            self._cond.notify_all()

    def wait_responses(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.responses) + len(self.errors) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def reset(self) -> None:
        with self._cond:
            self._events.clear()
            self.responses.clear()
            self.errors.clear()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


def ric_env(api: str, task_root: Path, handler: str = "app.handler") -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": api,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "PYTHONUNBUFFERED": "1",
        "HOME": str(task_root),
    }


def launch_ric(
    api: str, task_root: Path, handler: str = "app.handler", extra: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A fresh `python -m awslambdaric app.handler`, as a Lambda custom runtime runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", handler], cwd=task_root,
        env={**ric_env(api, task_root, handler), **(extra or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    for proc in procs:
        proc.wait()


# ---------------------------------------------------------------- results files


def source_revision() -> str:
    """The commit the measured lamina was built from, and whether src/ had local changes."""
    root = HERE.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown revision"
    return f"{head}{' with uncommitted changes in src/' if dirty else ''}"


class Results:
    """A results file whose sections are written by separate subcommand runs."""

    def __init__(self, path: Path, title: str, order: Sequence[str]) -> None:
        self.path = path
        self.json_path = path.with_suffix(".json")
        self.title = title
        self.order = list(order)
        self.data: dict[str, Any] = {}
        if self.json_path.exists():
            with contextlib.suppress(ValueError):
                self.data = json.loads(self.json_path.read_text())

    def put(self, section: str, markdown: str, raw: Any) -> None:
        self.data[section] = {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{machine()}; lamina at {source_revision()}",
            "markdown": markdown,
            "raw": raw,
        }
        self.json_path.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        parts = [f"# {self.title}", ""]
        for name in self.order:
            if name in self.data:
                entry = self.data[name]
                parts += [
                    entry["markdown"].rstrip(),
                    "",
                    f"_Run {entry['when']} on {entry['machine']}._",
                    "",
                ]
        self.path.write_text("\n".join(parts))


def timed(label: str) -> Callable[[], None]:
    start = time.monotonic()
    print(f"-- {label} ...", flush=True)

    def done() -> None:
        print(f"   {label}: {time.monotonic() - start:.1f} s", flush=True)

    return done


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"lamina-bench-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
