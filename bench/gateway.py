"""The AI gateway beside its peers: lamina, LiteLLM proxy and Portkey's gateway in one run.

    python bench/gateway.py [--seconds 5] [--rounds 3] [--samples 200] [--delay-ms 0]
    python bench/gateway.py mock --port P [--delay-ms 0] [--chunk-gap-ms 5]   # the upstream
    python bench/gateway.py --baseline DIR/src   # and "lamina@base", run from DIR/src, beside

Every gateway fronts the same mock upstream: a small uvloop + httptools server in its
own process speaking OpenAI's chat completions wire format (a JSON answer, or SSE with
`stream: true`: the first chunk at once, then four more `--chunk-gap-ms` apart, the
usage chunk when asked, `[DONE]`), after a fixed `--delay-ms`. The baseline, "direct",
is the mock called without a gateway; "floor" is a bare ASGI app under the same uvicorn
relaying to the mock with lamina's upstream client (`gateway.py floor`): what Python,
uvicorn and one more hop cost before any of lamina's layers. Measured per round, each target right after the
others, and the median of the rounds kept:

- latency at 1 connection, plain and streamed: a Python client (blocking sockets,
  httptools parsing the response) on one keep-alive connection per target, the targets
  taking turns in blocks of 20 back-to-back requests so that they see the same machine; the gateway's
  *added* p50/p99 is its figure minus direct's; when streaming, the time to the first
  SSE `data:` line (time to first token);
- throughput at 32 connections: wrk `-t2 -c32`, and the CPU seconds the gateway's
  process tree spent per request (utime + stime from /proc/<pid>/stat before and
  after), whence requests per second per core of gateway CPU — the figure that
  compares on a shared 2-core machine, where wrk and the mock take their share;
- idle memory: RSS of `lamina serve` with the gateway configured, and of one with no
  gateway configuration (the increment is the configured gateway's share), and of the
  peers' process trees.

lamina runs with keys, limits and accounting on: a virtual key with rpm, tpm,
max_parallel and a USD budget, a model priced from its pricing data, usage rows written
behind. LiteLLM proxy (`litellm[proxy]`, installed into bench/.work/litellm/venv) runs
with a master key and no database — its virtual keys, budgets and spend need
PostgreSQL — so it does less per request than lamina here. Portkey's gateway
(`@portkey-ai/gateway`, npm into bench/.work/portkey) routes with `x-portkey-provider:
openai` and `x-portkey-custom-host`; its open-source build has no keys or budgets. A
peer that cannot be installed or started is reported as "not available (reason)".

Results: printed, and written as the "Gateway" section of bench/RESULTS.md between
`<!-- gateway:begin -->` and `<!-- gateway:end -->` (the rest of the file is left as it
is; bench/invoke.py keeps the section when it rewrites the file), raw numbers in
bench/RESULTS-gateway.json. Nothing here asserts timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from httptools import HttpRequestParser, HttpResponseParser

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_JSON = HERE / "RESULTS-gateway.json"
BEGIN, END = "<!-- gateway:begin -->", "<!-- gateway:end -->"
VENV_BIN = Path(sys.executable).parent
UPSTREAM_MODEL = "gpt-4o-mini"  # priced in lamina's pricing data: budgets are debited
MOCK_KEY = "sk-mock-upstream"
LAMINA_KEY = "lmk-bench-0123456789abcdef"
LITELLM_KEY = "sk-litellm-bench"
BASELINE = "lamina@base"  # the target run from --baseline's source tree
ACCESS_KEY, SECRET_KEY = "LKIABENCHMARK0000001", "bench-secret"
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say hello to the benchmark in five words."},
]
TICK = os.sysconf("SC_CLK_TCK")


# ====================================================================== the mock upstream

COMPLETION = orjson.dumps({
    "id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000,
    "model": UPSTREAM_MODEL, "system_fingerprint": "fp_mock",
    "choices": [{"index": 0, "message": {"role": "assistant",
                                         "content": "Hello there, dear benchmark reader!"},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 24, "completion_tokens": 8, "total_tokens": 32},
})  # fmt: skip


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000,
        "model": UPSTREAM_MODEL, "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    })  # fmt: skip


STREAM_EVENTS = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Hello there,"}),
    _chunk({"content": " dear benchmark"}),
    _chunk({"content": " reader!"}),
    _chunk({}, "stop"),
]
USAGE_EVENT = orjson.dumps({
    "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000,
    "model": UPSTREAM_MODEL, "choices": [],
    "usage": {"prompt_tokens": 24, "completion_tokens": 8, "total_tokens": 32},
})  # fmt: skip


def _sse(data: bytes) -> bytes:
    """One SSE event as one HTTP chunk."""
    payload = b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class MockUpstream(asyncio.Protocol):
    """OpenAI's chat completions, answered from pre-rendered bytes."""

    def __init__(self, delay_s: float, gap_s: float) -> None:
        self.delay_s, self.gap_s = delay_s, gap_s
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(bytes(body))

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        if not self.url.rstrip(b"/").endswith(b"/chat/completions"):
            self._write(self._plain(404, b'{"error": {"message": "not found"}}', keep), keep)
            return
        try:
            request = orjson.loads(b"".join(self.body))
        except orjson.JSONDecodeError:
            self._write(self._plain(400, b'{"error": {"message": "bad json"}}', keep), keep)
            return
        if request.get("stream"):
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            self._later(self.delay_s, self._stream, 0, usage, keep)
        else:
            self._later(self.delay_s, self._write, self._plain(200, COMPLETION, keep), keep)

    def _later(self, delay_s: float, fn: Callable[..., None], *args: Any) -> None:
        if delay_s > 0:
            self.loop.call_later(delay_s, fn, *args)
        else:
            fn(*args)

    @staticmethod
    def _plain(status: int, body: bytes, keep: bool) -> bytes:
        reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}[status]
        return (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
        ) % (status, reason, len(body), b"" if keep else b"connection: close\r\n", body)

    def _stream(self, index: int, usage: bool, keep: bool) -> None:
        out = b""
        if index == 0:
            out = (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                b"transfer-encoding: chunked\r\n%s\r\n"
            ) % (b"" if keep else b"connection: close\r\n")
        out += _sse(STREAM_EVENTS[index])
        if index + 1 < len(STREAM_EVENTS):
            self._write(out, True)
            self.loop.call_later(self.gap_s, self._stream, index + 1, usage, keep)
            return
        if usage:
            out += _sse(USAGE_EVENT)
        self._write(out + _sse(b"[DONE]") + b"0\r\n\r\n", keep)

    def _write(self, data: bytes, keep: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if not keep:
            self.transport.close()


def serve_mock(port: int, delay_ms: float, gap_ms: float) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: MockUpstream(delay_ms / 1000, gap_ms / 1000), "127.0.0.1", port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def serve_floor(port: int, upstream: str) -> None:
    """The floor: a bare ASGI app under the same uvicorn (uvloop, httptools) relaying each
    request to the upstream with lamina's own pooled client (gateway/http1.py), streams
    chunk by chunk — no Starlette, keys, limits, routing, translation or accounting. What
    Python, uvicorn and one more hop cost; lamina's figure above it is lamina's layers."""
    import uvicorn
    import uvloop

    from lamina.gateway.http1 import HTTP1Client

    client = HTTP1Client()
    headers = {"content-type": "application/json", "authorization": f"Bearer {MOCK_KEY}"}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        stream = b'"stream":true' in body
        async with client.request("POST", upstream, headers, body, 30) as response:
            kind = b"text/event-stream" if stream else b"application/json"
            start = {"type": "http.response.start", "status": response.status,
                     "headers": [(b"content-type", kind)]}  # fmt: skip
            if not stream:
                data = await response.read()
                await send(start)
                await send({"type": "http.response.body", "body": data})
                return
            await send(start)
            async for chunk in response.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", lifespan="off",
        log_level="warning", access_log=False,
    )  # fmt: skip
    uvloop.run(uvicorn.Server(config).serve())


def start_floor(work: Path, mock_port: int) -> Target:
    port = free_port()
    log = work / "floor.log"
    proc = spawn(
        [sys.executable, __file__, "floor", "--port", str(port), "--upstream",
         f"http://127.0.0.1:{mock_port}/v1/chat/completions"], log,
    )  # fmt: skip
    target = Target("floor", port, "/v1/chat/completions", {}, UPSTREAM_MODEL, proc, log)
    target.wait_ready(30, "the floor")
    target.note = ("a bare ASGI app under uvicorn relaying to the mock with lamina's upstream "
                   "client (gateway/http1.py): Python, uvicorn and one more hop, nothing else")  # fmt: skip
    return target


# ====================================================================== processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (benchlib's walk; imported late, as `machine` does, so
    the mock and floor subprocesses never load boto3)."""
    sys.path.insert(0, str(HERE))
    from benchlib import descendants

    return [pid, *descendants(pid)]


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes (children that exited are not counted)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / TICK


def rss_kb(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def http_once(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        reply = Reply()
        parser = HttpResponseParser(reply)
        while not reply.complete:
            data = sock.recv(65536)
            if not data:
                break
            parser.feed_data(data)
        return (parser.get_status_code() if reply.complete else 0), b"".join(reply.body)


class Unavailable(Exception):
    """A peer that could not be installed or started; the message says why."""


@dataclass
class Target:
    """One thing wrk and the streaming client are pointed at."""

    name: str
    port: int
    path: str
    headers: dict[str, str]
    model: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self, stream: bool) -> bytes:
        body: dict[str, Any] = {"model": self.model, "messages": MESSAGES, "max_tokens": 32}
        if stream:
            body["stream"] = True
        return orjson.dumps(body)

    def request(self, stream: bool) -> bytes:
        body = self.body(stream)
        head = f"POST {self.path} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n"
        head += "content-type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        head += f"content-length: {len(body)}\r\n\r\n"
        return head.encode() + body

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def pids(self) -> list[int]:
        return tree(self.proc.pid) if self.proc is not None else []

    def wait_ready(self, timeout: float, what: str) -> None:
        """Until a real chat completion comes back 200 (which proves the routing)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise Unavailable(f"{what} exited with {self.proc.returncode}: {self.tail()}")
            try:
                status, body = http_once(self.port, self.request(False))
            except OSError as exc:
                last = repr(exc)
                time.sleep(0.2)
                continue
            if status == 200 and b"Hello there" in body:
                return
            last = f"HTTP {status}: {body[:300]!r}"
            time.sleep(0.3)
        raise Unavailable(
            f"{what} did not answer a chat completion within {timeout:.0f} s ({last})"
        )

    def tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-600:].strip().replace("\n", " / ")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def spawn(cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    return subprocess.Popen(
        list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


# ====================================================================== the gateways


def start_mock(work: Path, delay_ms: float, gap_ms: float) -> Target:
    port = free_port()
    log = work / "mock.log"
    proc = spawn(
        [sys.executable, __file__, "mock", "--port", str(port), "--delay-ms", str(delay_ms),
         "--chunk-gap-ms", str(gap_ms)], log,
    )  # fmt: skip
    target = Target("direct", port, "/v1/chat/completions",
                    {"authorization": f"Bearer {MOCK_KEY}"}, UPSTREAM_MODEL, proc, log)  # fmt: skip
    target.wait_ready(30, "the mock upstream")
    return target


def lamina_config(mock_port: int) -> dict[str, Any]:
    return {
        "gateway": {
            "providers": [{"name": "mock", "type": "openai", "api_key": MOCK_KEY,
                           "base_url": f"http://127.0.0.1:{mock_port}/v1"}],
            "models": [{"name": "bench", "routes": [{"provider": "mock", "model": UPSTREAM_MODEL}],
                        "timeout_s": 30}],
            # Limits wide enough never to refuse, but on: each is checked and counted.
            "keys": [{"key": LAMINA_KEY, "name": "bench", "models": ["bench"], "rpm": 100_000_000,
                      "tpm": 10**12, "max_parallel": 10_000, "budget_usd": 1_000_000,
                      "budget_period": "month"}],
        }
    }  # fmt: skip


def start_lamina(work: Path, name: str, config: Mapping[str, Any] | None,
                 src: Path | None = None) -> Target:
    """`lamina serve`; with `src`, run from that source tree (another commit's `src/`)."""
    port = free_port()
    data = work / f"{name}-data"
    data.mkdir()
    args = [str(VENV_BIN / "lamina"), "serve", "--port", str(port), "--data-dir", str(data)]
    if config is not None:
        (work / f"{name}.yaml").write_text(yaml.safe_dump(dict(config)))
        args += ["--config", str(work / f"{name}.yaml")]
    env = dict(os.environ, LAMINA_ACCESS_KEY_ID=ACCESS_KEY, LAMINA_SECRET_ACCESS_KEY=SECRET_KEY)
    if src is not None:  # ahead of the editable install's path
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    log = work / f"{name}.log"
    target = Target(name, port, "/v1/chat/completions", {"authorization": f"Bearer {LAMINA_KEY}"},
                    "bench", spawn(args, log, env), log)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if target.proc is not None and target.proc.poll() is not None:
            raise SystemExit(f"lamina exited: {target.tail()}")
        with contextlib.suppress(OSError):
            if http_once(port, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")[0] == 200:
                break
        time.sleep(0.1)
    else:
        raise SystemExit("lamina did not come up")
    if config is not None:
        target.wait_ready(30, "lamina")
    return target


LITELLM_DIR = WORK / "litellm"
PORTKEY_DIR = WORK / "portkey"


def install_litellm() -> Path:
    binary = LITELLM_DIR / "venv" / "bin" / "litellm"
    if binary.exists():
        return binary
    LITELLM_DIR.mkdir(parents=True, exist_ok=True)
    log = LITELLM_DIR / "install.log"
    print(
        "-- installing litellm[proxy] into bench/.work/litellm/venv (a few minutes) ...", flush=True
    )
    with open(log, "wb") as out:
        for cmd in (
            [sys.executable, "-m", "venv", str(LITELLM_DIR / "venv")],
            [str(LITELLM_DIR / "venv" / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"],
        ):
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
                raise Unavailable(f"`{' '.join(cmd[-3:])}` failed: {tail[0][:200]}")
    if not binary.exists():
        raise Unavailable("litellm[proxy] installed no `litellm` command")
    return binary


def start_litellm(work: Path, mock_port: int) -> Target:
    binary = install_litellm()
    port = free_port()
    config = {
        "model_list": [{"model_name": "bench", "litellm_params": {
            "model": f"openai/{UPSTREAM_MODEL}", "api_base": f"http://127.0.0.1:{mock_port}/v1",
            "api_key": MOCK_KEY}}],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"telemetry": False, "set_verbose": False},
    }  # fmt: skip
    (work / "litellm.yaml").write_text(yaml.safe_dump(config))
    env = dict(
        os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False", DISABLE_SCHEMA_UPDATE="True", NO_DOCS="True",
        PATH=f"{binary.parent}:{os.environ.get('PATH', '')}",
    )  # fmt: skip
    env.pop("DATABASE_URL", None)
    log = work / "litellm.log"
    proc = spawn([str(binary), "--config", str(work / "litellm.yaml"), "--host", "127.0.0.1",
                  "--port", str(port), "--num_workers", "1"], log, env)  # fmt: skip
    target = Target("LiteLLM", port, "/v1/chat/completions",
                    {"authorization": f"Bearer {LITELLM_KEY}"}, "bench", proc, log)  # fmt: skip
    try:
        target.wait_ready(180, "litellm")
    except Unavailable:
        target.stop()
        raise
    target.extra["version"] = _litellm_version()
    target.note = "master key, no database (its virtual keys, budgets and spend need PostgreSQL)"
    return target


def _litellm_version() -> str:
    with contextlib.suppress(OSError):
        for meta in (LITELLM_DIR / "venv" / "lib").glob(
            "python*/site-packages/litellm-*.dist-info"
        ):
            return meta.name.removeprefix("litellm-").removesuffix(".dist-info")
    return "?"


# @hono/node-server after 1.13 hands Node's fetch Response headers (immutable) to the
# gateway, which then fails every stream with "TypeError: immutable"
# (Portkey-AI/gateway#1389): pin the last version that copies them.
PORTKEY_PACKAGE = {
    "name": "lamina-bench-portkey",
    "private": True,
    "dependencies": {"@portkey-ai/gateway": "*"},
    "overrides": {"@hono/node-server": "1.13.8"},
}


def install_portkey() -> Path:
    script = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    package = PORTKEY_DIR / "package.json"
    wanted = json.dumps(PORTKEY_PACKAGE, indent=1) + "\n"
    if script.exists() and package.exists() and package.read_text() == wanted:
        return script
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise Unavailable("node and npm are needed (apt-get install nodejs npm)")
    PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
    package.write_text(wanted)
    print("-- npm install @portkey-ai/gateway into bench/.work/portkey ...", flush=True)
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund"], cwd=PORTKEY_DIR,
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0 or not script.exists():
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise Unavailable(f"npm install @portkey-ai/gateway failed: {tail[:200]}")
    return script


def start_portkey(work: Path, mock_port: int) -> Target:
    script = install_portkey()
    port = free_port()
    log = work / "portkey.log"
    env = dict(os.environ, NODE_ENV="production")
    proc = spawn(["node", str(script), f"--port={port}", "--headless"], log, env, cwd=PORTKEY_DIR)
    headers = {
        "authorization": f"Bearer {MOCK_KEY}", "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1",
    }  # fmt: skip
    target = Target("Portkey", port, "/v1/chat/completions", headers, UPSTREAM_MODEL, proc, log)
    try:
        target.wait_ready(60, "portkey")
    except Unavailable:
        target.stop()
        raise
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads((script.parent.parent / "package.json").read_text())
        target.extra["version"] = meta["version"]
    target.extra["node"] = subprocess.run(["node", "--version"], capture_output=True,
                                          text=True).stdout.strip()  # fmt: skip
    target.note = (
        "open-source build (no keys, limits or budgets); @hono/node-server pinned to 1.13.8 "
        "(Portkey-AI/gateway#1389)"
    )
    return target


# ====================================================================== measuring


def lua_script(target: Target, stream: bool, work: Path) -> Path:
    body = target.body(stream).decode()
    assert "]]" not in body
    lines = ['wrk.method = "POST"', f"wrk.body = [[{body}]]",
             'wrk.headers["Content-Type"] = "application/json"']  # fmt: skip
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in target.headers.items()]
    path = work / f"{target.name.lower()}-{'stream' if stream else 'plain'}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(target: Target, connections: int, seconds: float, work: Path) -> dict[str, float]:
    """wrk against the target, with the CPU its process tree spent meanwhile."""
    threads = 1 if connections == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "-s", str(lua_script(target, False, work)), target.url]  # fmt: skip
    pids = target.pids()
    cpu0, wall0 = cpu_seconds(pids), time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu, wall = cpu_seconds(pids) - cpu0, time.monotonic() - wall0
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def percentile(p: str) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if match is None:
            raise SystemExit(f"cannot read wrk output:\n{out}")
        return float(match[1]) * units[match[2]]

    requests = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    count = float(requests[1]) if requests else float("nan")
    return {
        "p50_ms": percentile("50"),
        "p90_ms": percentile("90"),
        "p99_ms": percentile("99"),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "requests": count,
        "errors": (float(errors[1]) if errors else 0.0)
        + (sum(float(g) for g in socket_errors.groups()) if socket_errors else 0.0),
        "cpu_s": cpu,
        "cpu_ms_per_request": cpu / count * 1000 if pids and count else float("nan"),
        "wall_s": wall,
    }


class Reply:
    """httptools callbacks for one response: body pieces, when the first SSE data came."""

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.first_body: float | None = None
        self.first_data: float | None = None
        self.complete = False

    def on_body(self, body: bytes) -> None:
        if self.first_body is None:
            self.first_body = time.perf_counter()
        if self.first_data is None and b"data:" in body:
            self.first_data = time.perf_counter()
        self.body.append(bytes(body))

    def on_message_complete(self) -> None:
        self.complete = True


def stream_samples(
    target: Target, samples: int, warmup: int = 20, pause_s: float = 0.0
) -> dict[str, Any]:
    """Time to the first SSE `data:` line and to the end of the stream, over one keep-alive
    connection, one request at a time, `pause_s` apart."""
    request = target.request(True)
    sock = socket.create_connection(("127.0.0.1", target.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ttft: list[float] = []
    total: list[float] = []
    errors = 0
    try:
        for i in range(warmup + samples):
            if pause_s:
                time.sleep(pause_s)
            reply = Reply()
            parser = HttpResponseParser(reply)
            start = time.perf_counter()
            sock.sendall(request)
            while not reply.complete:
                data = sock.recv(65536)
                if not data:
                    raise OSError("the connection closed mid-response")
                parser.feed_data(data)
            end = time.perf_counter()
            body = b"".join(reply.body)
            ok = parser.get_status_code() == 200 and b"dear benchmark" in body and b"[DONE]" in body
            if i < warmup:
                continue
            if not ok or reply.first_data is None:
                errors += 1
                continue
            ttft.append((reply.first_data - start) * 1000)
            total.append((end - start) * 1000)
    finally:
        sock.close()
    return {
        "ttft_p50_ms": statistics.median(ttft) if ttft else float("nan"),
        "ttft_p99_ms": _pct(ttft, 0.99),
        "total_p50_ms": statistics.median(total) if total else float("nan"),
        "samples": len(ttft),
        "errors": errors,
    }


class Client:
    """One keep-alive connection to a target, one request at a time."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.plain, self.stream = target.request(False), target.request(True)
        self.sock = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.target.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def once(self, stream: bool) -> tuple[bool, float, float]:
        """(answered well, ms to the first byte of the body — the first SSE `data:` line
        when streaming — and ms to the end of the response)."""
        try:
            return self._once(stream)
        except _Closed:
            # The server closed the idle keep-alive connection (node's closes after 5 s)
            # before reading the request: reconnect, outside the clock, and send again.
            self.sock.close()
            self.sock = self._connect()
            return self._once(stream)

    def _once(self, stream: bool) -> tuple[bool, float, float]:
        reply = Reply()
        parser = HttpResponseParser(reply)
        start = time.perf_counter()
        try:
            self.sock.sendall(self.stream if stream else self.plain)
        except OSError as exc:
            raise _Closed from exc
        received = False
        while not reply.complete:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError as exc:
                if received:
                    raise
                raise _Closed from exc
            if not data:
                if received:
                    raise OSError("the connection closed mid-response")
                raise _Closed
            received = True
            parser.feed_data(data)
        end = time.perf_counter()
        body = b"".join(reply.body)
        ok = parser.get_status_code() == 200 and (
            b"dear benchmark" in body and b"[DONE]" in body if stream else b"Hello there" in body
        )
        first = reply.first_data if stream else reply.first_body
        return ok, ((first or end) - start) * 1000, (end - start) * 1000

    def close(self) -> None:
        self.sock.close()


class _Closed(Exception):
    """The connection was closed before any of the response arrived."""


def interleaved(
    targets: Sequence[Target], samples: int, block: int = 20, skip: int = 4
) -> dict[str, Any]:
    """Latency at one connection, plain and streamed. The targets take turns in blocks
    of `block` back-to-back requests of each kind (the first `skip` of a block not
    counted: they pay for the other targets having had the cores), the order rotating,
    so that every target sees the same machine: on a shared machine the load changes
    faster than a whole series per target would take."""
    clients = [Client(t) for t in targets]
    out: dict[str, dict[str, Any]] = {
        t.name: {"plain": [], "ttft": [], "stream_total": [], "errors": 0} for t in targets
    }
    per_block = block - skip
    try:
        for turn in range(max(1, -(-samples // per_block))):
            first = turn % len(clients)
            for client in clients[first:] + clients[:first]:
                row = out[client.target.name]
                for stream in (False, True):
                    for i in range(block):
                        ok, first_ms, total = client.once(stream)
                        if i < skip:
                            continue
                        if not ok:
                            row["errors"] += 1
                        elif stream:
                            row["ttft"].append(first_ms)
                            row["stream_total"].append(total)
                        else:
                            row["plain"].append(total)
    finally:
        for client in clients:
            client.close()
    return {
        name: {
            "p50_ms": _p50(row["plain"]),
            "p99_ms": _pct(row["plain"], 0.99),
            "ttft_p50_ms": _p50(row["ttft"]),
            "ttft_p99_ms": _pct(row["ttft"], 0.99),
            "stream_total_p50_ms": _p50(row["stream_total"]),
            "samples": len(row["plain"]),
            "errors": row["errors"],
        }
        for name, row in out.items()
    }


def _p50(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _median(rounds: Sequence[Mapping[str, float]], name: str) -> float:
    values = [r[name] for r in rounds if r.get(name) == r.get(name)]  # drop NaN
    return statistics.median(values) if values else float("nan")


def import_rss_kb(module: str | None) -> int:
    """VmRSS of a fresh interpreter after importing `module` (None: nothing)."""
    code = (f"import {module}\n" if module else "") + (
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS:')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def settle_idle(pids: Callable[[], list[int]], seconds: float = 2.0) -> int:
    """RSS (kB) once the process tree has been idle a moment."""
    time.sleep(seconds)
    return rss_kb(pids())


# ====================================================================== report


def fmt(value: float, digits: int = 2) -> str:
    return "–" if value != value else f"{value:.{digits}f}"


def render(raw: dict[str, Any], args: argparse.Namespace) -> str:
    names = [n for n in ("direct", "floor", "lamina", BASELINE, "LiteLLM", "Portkey")
             if n in raw["targets"]]
    gateways = [n for n in names if n != "direct"]
    d = raw["summary"]["direct"]
    lines = [
        "## Gateway: lamina against LiteLLM proxy and Portkey (`gateway.py`)",
        "",
        f"One mock upstream (OpenAI chat completions, uvloop + httptools, own process; answers "
        f"after {args.delay_ms:g} ms; streams the first chunk at once and four more "
        f"{args.chunk_gap_ms:g} ms apart) behind each gateway; **direct** is the mock without one. "
        f"At 1 connection: a Python client (httptools) on one keep-alive connection per "
        f"target, the targets taking turns in blocks of 20 back-to-back requests (the first "
        f"4 of a block not counted), {args.samples} plain and {args.samples} streamed "
        f"requests counted per target and round; TTFT = time to the first SSE "
        f"`data:` line. At 32 connections: wrk, {args.seconds:g} s per target and round, "
        f"after {args.warmup:g} s of warm-up each. "
        f"{args.rounds} rounds; medians of the rounds. CPU: utime + stime of the gateway's "
        "process tree over the 32-connection run ÷ requests; req/s per core = 1 ÷ that. "
        "Milliseconds unless marked.",
        "",
        "| target | added p50 @1 | added p99 @1 | p50 @1 | req/s @32 | CPU ms/req @32 | req/s per core | "
        "req/s per core ÷ Portkey | added TTFT p50 (stream) | TTFT p50 | idle RSS MB | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    portkey_per_core = raw["summary"].get("Portkey", {}).get("per_core", float("nan"))
    for name in names:
        s = raw["summary"][name]
        added50 = s["p50_1"] - d["p50_1"] if name != "direct" else 0.0
        added99 = s["p99_1"] - d["p99_1"] if name != "direct" else 0.0
        ttft_added = s["ttft"] - d["ttft"] if name != "direct" else 0.0
        vs_portkey = s["per_core"] / portkey_per_core if name != "direct" else float("nan")
        rss = raw["targets"][name].get("idle_rss_kb")
        lines.append(
            f"| {name} | {fmt(added50, 3) if name != 'direct' else '(baseline)'} | "
            f"{fmt(added99, 3) if name != 'direct' else ''} | {fmt(s['p50_1'], 3)} | "
            f"{s['rps_32']:.0f} | {fmt(s['cpu_ms'], 3)} | {fmt(s['per_core'], 0)} | "
            f"{fmt(vs_portkey) if name not in ('direct', 'Portkey') else ''} | "
            f"{fmt(ttft_added, 3) if name != 'direct' else '(baseline)'} | {fmt(s['ttft'], 3)} | "
            f"{fmt(rss / 1024, 1) if rss else '–'} | {s['errors']:.0f} |"
        )
    for name, reason in raw["unavailable"].items():
        lines.append(f"| {name} | not available ({reason}) |" + " |" * 10)
    lines += ["", "What each ran:", ""]
    for name in gateways:
        t = raw["targets"][name]
        version = f" {t['version']}" if t.get("version") else ""
        lines.append(f"- **{name}**{version}: {t.get('note', '')}")
    mem = raw.get("memory", {})
    if mem:
        lines += [
            "",
            f"lamina serve's own process (zygotes and function environments excluded), idle: "
            f"{mem['with_gateway_kb'] / 1024:.1f} MB RSS with the gateway configured, "
            f"{mem['without_gateway_kb'] / 1024:.1f} MB with no gateway configuration "
            f"(**{(mem['with_gateway_kb'] - mem['without_gateway_kb']) / 1024:+.1f} MB** for the "
            f"configured gateway; its code is imported either way); after the load "
            f"{mem['after_load_kb'] / 1024:.1f} MB. A fresh interpreter importing only "
            f"`lamina.gateway.gateway` (the gateway's code and its libraries: SQLAlchemy, "
            f"Starlette, httptools, orjson, PyYAML): {mem['gateway_import_kb'] / 1024:.1f} MB RSS, "
            f"{(mem['gateway_import_kb'] - mem['python_kb']) / 1024:.1f} MB over a bare one.",
        ]
    lines += [
        "",
        *targets_line(raw),
        "",
        f"Load average before / after: {raw['load_before']} / {raw['load_after']}.",
    ]
    return "\n".join(lines) + "\n"


def targets_line(raw: Mapping[str, Any]) -> list[str]:
    """lamina against issue 5's targets, each figure from this run."""
    summary = raw["summary"]
    if "lamina" not in summary:
        return []
    d, m = summary["direct"], summary["lamina"]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    added = m["p50_1"] - d["p50_1"]
    ttft = m["ttft"] - d["ttft"]
    out = [
        "lamina against issue 5's targets in this run:",
        "",
        f"- added p50 at 1 connection ≤ 1 ms: {added:.3f} ms — {verdict(added <= 1)}",
    ]
    portkey = summary.get("Portkey", {}).get("per_core")
    if portkey:
        ratio = m["per_core"] / portkey
        out.append(
            f"- req/s per core at 32 connections ≥ Portkey's: {m['per_core']:.0f} against "
            f"{portkey:.0f}, {ratio:.2f}× — {verdict(ratio >= 1)}"
        )
    else:
        out.append("- req/s per core ≥ Portkey's: Portkey not available in this run")
    out.append(f"- added time to first token ≤ 1 ms: {ttft:.3f} ms — {verdict(ttft <= 1)}")
    mem = raw.get("memory")
    if mem:
        part = (mem["with_gateway_kb"] - mem["without_gateway_kb"]) / 1024
        alone = mem["gateway_import_kb"] / 1024
        out.append(
            f"- gateway idle RSS < 100 MB: {part:+.1f} MB in `lamina serve`, {alone:.1f} MB "
            f"for an interpreter with only the gateway's code — {verdict(max(part, alone) < 100)}"
        )
    return out


def write_section(markdown: str, raw: dict[str, Any]) -> None:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = f"{BEGIN}\n{markdown}\n_Run {when} on {raw['machine']}._\n{END}\n"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    RESULTS_MD.write_text(text)
    RESULTS_JSON.write_text(json.dumps(dict(raw, when=when), indent=1, default=str) + "\n")


def machine() -> str:
    sys.path.insert(0, str(HERE))
    from benchlib import machine as describe
    from benchlib import source_revision

    return f"{describe()}; lamina at {source_revision()}"


# ====================================================================== main


def run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (make bench-gateway installs it)")
    raw: dict[str, Any] = {"targets": {}, "rounds": [], "unavailable": {},
                           "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}  # fmt: skip
    targets: list[Target] = []
    with _workdir() as work:
        try:
            mock = start_mock(work, args.delay_ms, args.chunk_gap_ms)
            targets.append(mock)
            # Idle memory first: a lamina with no gateway configuration, then with one.
            bare = start_lamina(work, "lamina-bare", None)
            without = settle_idle(lambda: [bare.proc.pid] if bare.proc else [])
            bare.stop()
            lamina = start_lamina(work, "lamina", lamina_config(mock.port))
            with_gateway = settle_idle(lambda: [lamina.proc.pid] if lamina.proc else [])
            lamina.note = ("virtual key with rpm, tpm, max_parallel and a monthly USD budget; "
                           "model priced; usage and spend written behind (SQLite)")  # fmt: skip
            targets.append(lamina)
            raw["targets"]["lamina"] = {"idle_rss_kb": with_gateway, "note": lamina.note}
            if args.baseline is not None:
                base = start_lamina(work, BASELINE, lamina_config(mock.port), args.baseline)
                base.note = args.baseline_note or f"the same configuration, run from {args.baseline}"
                targets.append(base)
                raw["targets"][BASELINE] = {
                    "idle_rss_kb": settle_idle(lambda: [base.proc.pid] if base.proc else []),
                    "note": base.note,
                }  # fmt: skip
            for name, start in (("LiteLLM", start_litellm), ("Portkey", start_portkey)):
                done = _timed(f"starting {name}")
                try:
                    peer = start(work, mock.port)
                except Unavailable as exc:
                    raw["unavailable"][name] = str(exc)
                    print(f"   {name}: not available ({exc})", flush=True)
                    continue
                finally:
                    done()
                targets.append(peer)
                raw["targets"][name] = {"idle_rss_kb": settle_idle(peer.pids, 1.0),
                                        "note": peer.note, **peer.extra}  # fmt: skip
            raw["targets"]["direct"] = {"idle_rss_kb": rss_kb(mock.pids())}
            floor = start_floor(work, mock.port)
            targets.insert(1, floor)
            raw["targets"]["floor"] = {"idle_rss_kb": rss_kb(floor.pids()), "note": floor.note}
            done = _timed("warm-up")
            for target in targets:
                # Node's JIT takes ~15 s of load to settle (Portkey: ~4 -> ~2 ms CPU per
                # request on the reference machine): every target gets the same warm-up.
                wrk(target, 32, args.warmup, work)
            interleaved(targets, 1)
            done()
            for round_no in range(args.rounds):
                done = _timed(f"round {round_no + 1}/{args.rounds}")
                one = interleaved(targets, args.samples)
                row: dict[str, Any] = {
                    t.name: {"c1": one[t.name], "c32": wrk(t, 32, args.seconds, work)}
                    for t in targets
                }
                raw["rounds"].append(row)
                done()
                _print_round(row)
            raw["memory"] = {
                "with_gateway_kb": with_gateway, "without_gateway_kb": without,
                "python_kb": import_rss_kb(None),
                "gateway_import_kb": import_rss_kb("lamina.gateway.gateway"),
                "after_load_kb": settle_idle(lambda: [lamina.proc.pid] if lamina.proc else []),
            }  # fmt: skip
        finally:
            for target in targets:
                target.stop()
    raw["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    raw["summary"] = {}
    for name in raw["targets"]:
        rounds = [r[name] for r in raw["rounds"]]
        c1 = [r["c1"] for r in rounds]
        c32 = [r["c32"] for r in rounds]
        cpu_ms = _median(c32, "cpu_ms_per_request")
        raw["summary"][name] = {
            "p50_1": _median(c1, "p50_ms"), "p99_1": _median(c1, "p99_ms"),
            "rps_32": _median(c32, "rps"), "cpu_ms": cpu_ms, "per_core": 1000 / cpu_ms,
            "ttft": _median(c1, "ttft_p50_ms"), "ttft_99": _median(c1, "ttft_p99_ms"),
            "errors": sum(r["errors"] for r in c1 + c32),
        }  # fmt: skip
    raw["machine"] = machine()
    markdown = render(raw, args)
    print()
    print(markdown)
    write_section(markdown, raw)
    print(f"written to {RESULTS_MD} (section 'Gateway') and {RESULTS_JSON}")


def _print_round(row: Mapping[str, Any]) -> None:
    direct = row["direct"]
    for name, r in row.items():
        print(
            f"   {name:8} @1 p50 {r['c1']['p50_ms']:.3f} ms "
            f"(+{r['c1']['p50_ms'] - direct['c1']['p50_ms']:.3f}) p99 {r['c1']['p99_ms']:.3f} | "
            f"@32 {r['c32']['rps']:.0f} req/s, {r['c32']['cpu_ms_per_request']:.3f} ms CPU/req | "
            f"TTFT {r['c1']['ttft_p50_ms']:.3f} ms "
            f"(+{r['c1']['ttft_p50_ms'] - direct['c1']['ttft_p50_ms']:.3f}) | "
            f"errors {r['c1']['errors'] + r['c32']['errors']:.0f}",
            flush=True,
        )


def _timed(label: str) -> Callable[[], None]:
    start = time.monotonic()
    print(f"-- {label} ...", flush=True)
    return lambda: print(f"   {label}: {time.monotonic() - start:.1f} s", flush=True)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lamina-bench-gateway-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    mock = sub.add_parser("mock", help="run only the mock upstream")
    mock.add_argument("--port", type=int, required=True)
    floor = sub.add_parser("floor", help="run only the floor (a bare relay) to --upstream")
    floor.add_argument("--port", type=int, required=True)
    floor.add_argument("--upstream", required=True)
    for p in (parser, mock):
        p.add_argument("--delay-ms", type=float, default=0.0, help="upstream answer delay")
        p.add_argument("--chunk-gap-ms", type=float, default=5.0, help="between streamed chunks")
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk figure")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=15.0, help="s at 32 connections each")
    parser.add_argument(
        "--baseline",
        type=Path,
        help=f"another source tree's src/ (e.g. git archive COMMIT src | tar -x -C DIR): "
        f"a second lamina run from it, '{BASELINE}', measured beside the working tree's",
    )
    parser.add_argument("--baseline-note", help=f"what '{BASELINE}' is, for the report")
    parser.add_argument(
        "--samples",
        type=int,
        default=200,
        help="requests per target and round at 1 connection (plain and streamed each)",
    )
    args = parser.parse_args()
    if args.command == "mock":
        serve_mock(args.port, args.delay_ms, args.chunk_gap_ms)
    elif args.command == "floor":
        serve_floor(args.port, args.upstream)
    else:
        run(args)


if __name__ == "__main__":
    main()
