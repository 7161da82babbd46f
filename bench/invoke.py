"""Warm and cold invoke benchmark: lamina against the floor, in the same run.

The floor is the same no-op handler called in-process by a bare ASGI app under the
same uvicorn (uvloop + httptools): the cost of HTTP alone. Load comes from wrk (C,
keep-alive) replaying one SigV4-signed Invoke request — a signature stays valid for
15 minutes, so one signed request can be replayed for the whole run.

    python bench/invoke.py [--seconds 5] [--out bench/RESULTS.md]

Figures are printed and written to RESULTS.md as ratios to the floor measured in the
same run: the machines are shared and noisy, so absolute numbers drift.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

HERE = Path(__file__).resolve().parent
KEY, SECRET = "LKIABENCHMARK0000001", "bench-secret"
NOOP = "def handler(event, context):\n    return None\n"
LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
FLOOR_APP = textwrap.dedent(
    """
    def handler(event, context):
        return None

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        result = handler(body, None)
        payload = b"null" if result is None else repr(result).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, connections: int, seconds: float, script: Path | None) -> dict[str, float]:
    threads = min(connections, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    if script is not None:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def percentile(p: str) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if match is None:
            raise SystemExit(f"cannot read wrk output:\n{out}")
        return float(match[1]) * units[match[2]]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "rps": rps,
        "errors": float(errors[1]) if errors else 0.0,
    }


def signed_invoke_script(endpoint: str, function: str, workdir: Path) -> Path:
    url = f"{endpoint}/2015-03-31/functions/{function}/invocations"
    request = AWSRequest(method="POST", url=url, data=b"{}", headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(request)
    headers = "\n".join(
        f'wrk.headers["{k}"] = "{v}"' for k, v in request.headers.items() if k.lower() != "host"
    )
    script = workdir / "invoke.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = "{{}}"\n{headers}\n')
    return script


def cold_starts(client: Any, samples: int) -> dict[str, list[float]]:
    """First response after Active, for a new function and for a new environment."""
    new_function, new_environment = [], []
    for i in range(samples):
        name = f"cold-{i}-{int(time.time() * 1000)}"
        client.create_function(
            FunctionName=name, Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
            Role="arn:aws:iam::000000000000:role/bench", Handler="app.handler",
            Code={"ZipFile": _zip(NOOP)},
        )  # fmt: skip
        client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.05})
        start = time.perf_counter()
        client.invoke(FunctionName=name, Payload=b"{}")
        new_function.append((time.perf_counter() - start) * 1000)
        # a configuration change retires the warm environment: the next call starts a new one
        client.update_function_configuration(FunctionName=name, Description=f"rev {i}")
        client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.05})
        start = time.perf_counter()
        client.invoke(FunctionName=name, Payload=b"{}")
        new_environment.append((time.perf_counter() - start) * 1000)
    return {"new_function": new_function, "new_environment": new_environment}


def warm_client_floor(client: Any, name: str, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        client.invoke(FunctionName=name, Payload=b"{}")
        times.append((time.perf_counter() - start) * 1000)
    return times


def _zip(code: str) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", code)
    return buffer.getvalue()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--cold-samples", type=int, default=15)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (make bench installs it)")
    bin_dir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="lamina-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # ---- the floor
        (work / "floor.py").write_text(FLOOR_APP)
        floor_port = free_port()
        procs.append(subprocess.Popen(
            [str(bin_dir / "uvicorn"), "floor:app", "--port", str(floor_port), "--loop", "uvloop",
             "--http", "httptools", "--log-level", "warning", "--no-access-log"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        floor_url = f"http://127.0.0.1:{floor_port}/"
        wait_healthy(floor_url, procs[-1])

        # ---- lamina
        port = free_port()
        env = dict(os.environ, LAMINA_ACCESS_KEY_ID=KEY, LAMINA_SECRET_ACCESS_KEY=SECRET)
        procs.append(subprocess.Popen(
            [str(bin_dir / "lamina"), "serve", "--port", str(port), "--data-dir", str(work / "data")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        endpoint = f"http://127.0.0.1:{port}"
        wait_healthy(f"{endpoint}/health", procs[-1])
        client = boto3.client(
            "lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY,
            aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 0}),
        )  # fmt: skip
        boto3.client(
            "iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        ).create_role(RoleName="bench", AssumeRolePolicyDocument=LAMBDA_TRUST)  # fmt: skip
        client.create_function(
            FunctionName="noop", Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
            Role="arn:aws:iam::000000000000:role/bench", Handler="app.handler",
            Code={"ZipFile": _zip(NOOP)},
        )  # fmt: skip
        client.get_waiter("function_active_v2").wait(FunctionName="noop", WaiterConfig={"Delay": 0.05})
        script = signed_invoke_script(endpoint, "noop", work)
        invoke_url = f"{endpoint}/2015-03-31/functions/noop/invocations"

        results: dict[str, dict[str, dict[str, float]]] = {"floor": {}, "lamina": {}}
        wrk(invoke_url, 32, 2, script)  # warm-up: start the environments 32 connections need
        wrk(floor_url, 32, 1, None)
        for connections in (1, 8, 32):
            results["floor"][str(connections)] = wrk(floor_url, connections, args.seconds, None)
            results["lamina"][str(connections)] = wrk(invoke_url, connections, args.seconds, script)
        boto3_warm = warm_client_floor(client, "noop", 300)
        cold = cold_starts(client, args.cold_samples)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    report = render(results, cold, boto3_warm)
    print(report)
    # Sections other scripts keep in this file between markers (bench/gateway.py's) stay.
    previous = args.out.read_text() if args.out.exists() else ""
    kept = [m[0] for m in re.finditer(r"<!-- (\w+):begin -->.*?<!-- \1:end -->\n", previous, re.S)]
    args.out.write_text("\n".join([report, *kept]))
    (args.out.with_suffix(".json")).write_text(json.dumps({"warm": results, "cold": cold}, indent=2))


def render(
    results: dict[str, dict[str, dict[str, float]]], cold: dict[str, list[float]], boto3_warm: list[float]
) -> str:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    lines = [
        "# Invoke benchmark",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python bench/invoke.py` on "
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}. Load from wrk over loopback keep-alive connections; lamina's "
        "requests are SigV4-signed Invoke calls of a no-op Python function; the floor is the same "
        "handler called in-process by a bare ASGI app under the same uvicorn.",
        "",
        "## Warm invoke",
        "",
        "| connections | floor p50 | floor p99 | floor req/s | lamina p50 | lamina p99 | lamina req/s | p50 × floor | req/s ÷ floor | lamina errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in ("1", "8", "32"):
        f, m = results["floor"][c], results["lamina"][c]
        lines.append(
            f"| {c} | {f['p50_ms']:.3f} ms | {f['p99_ms']:.3f} ms | {f['rps']:.0f} | "
            f"{m['p50_ms']:.3f} ms | {m['p99_ms']:.3f} ms | {m['rps']:.0f} | "
            f"{m['p50_ms'] / f['p50_ms']:.1f}x | {m['rps'] / f['rps']:.2f} | {m['errors']:.0f} |"
        )
    lines += [
        "",
        f"boto3 client round trip to lamina (client overhead included), {len(boto3_warm)} calls: "
        f"p50 {statistics.median(boto3_warm):.2f} ms, p99 {pct(boto3_warm, 0.99):.2f} ms.",
        "",
        "## Cold start (boto3 client, milliseconds)",
        "",
        "| what | samples | p50 | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("new_function", "first invoke after CreateFunction is Active"),
        ("new_environment", "first invoke of a new environment (config change)"),
    ):
        values = cold[key]
        lines.append(
            f"| {label} | {len(values)} | {statistics.median(values):.1f} | {pct(values, 0.99):.1f} | {max(values):.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
