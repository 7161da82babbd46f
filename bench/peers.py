"""lamina beside its peers: warm invokes against serverless-offline, and density.

    python bench/peers.py warm      # wrk at 1 and 32 connections: lamina, serverless-offline, floor
    python bench/peers.py density   # up to 1,000 idle warm environments: memory, warm p50
    python bench/peers.py all

Each subcommand starts its own servers, prints its figures and rewrites its own section
of bench/RESULTS-peers.md (raw numbers in bench/RESULTS-peers.json).

serverless-offline 13 (with serverless 3, which it requires; serverless 4 needs a login)
is installed with npm into bench/.work/sls on first use, and serves the Lambda Invoke
API on its lambdaPort (POST /2015-03-31/functions/<name>/invocations), unsigned. lamina
gets wrk replaying one SigV4-signed Invoke request, as bench/invoke.py does. The handler
is `return {}` everywhere: serverless-offline 13's Python runner never answers a handler
that returns None (its payload is JSON null, which it takes for "no payload yet") and
times the call out after 6 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchlib import (
    HERE,
    WORK,
    FakeRuntimeApi,
    Lamina,
    Results,
    burst,
    children,
    descendants,
    free_port,
    launch_ric,
    make_zip,
    meminfo,
    memory,
    sign,
    stop,
    summary,
    timed,
    total_memory,
    workdir,
)  # fmt: skip
from invoke import FLOOR_APP, signed_invoke_script, wait_healthy, wrk

from lamina.settings import auto_workers

HANDLER = "def handler(event, context):\n    return {}\n"
SLEEP50 = "import time\n\n\ndef handler(event, context):\n    time.sleep(0.05)\n    return {}\n"
# Waits until the time in the event (the sandbox hides the host's files, so a release
# file would not do), then answers with an id drawn on the environment's first call.
HOLD = """import os
import time

ID = []


def handler(event, context):
    until = event.get("until") if isinstance(event, dict) else None
    if until:
        time.sleep(max(0.0, until - time.time()))
    if not ID:
        ID.append(os.urandom(8).hex())
    return ID[0]
"""
SLS_DIR = WORK / "sls"
SLS_YML = """service: lamina-bench
frameworkVersion: '3'
provider:
  name: aws
  runtime: python3.11
  region: us-east-1
plugins:
  - serverless-offline
custom:
  serverless-offline:
    lambdaPort: {lambda_port}
    httpPort: {http_port}
    websocketPort: {ws_port}
    noPrependStageInUrl: true
functions:
  noop:
    handler: app.handler
"""
ORDER = ["warm", "density"]


# ------------------------------------------------------------------ serverless-offline


def ensure_serverless_offline() -> Path:
    binary = SLS_DIR / "node_modules" / ".bin" / "serverless"
    if not binary.exists():
        if shutil.which("npm") is None:
            raise SystemExit("npm is needed to install serverless-offline")
        SLS_DIR.mkdir(parents=True, exist_ok=True)
        if not (SLS_DIR / "package.json").exists():
            (SLS_DIR / "package.json").write_text('{"name": "lamina-bench-sls", "private": true}\n')
        done = timed("npm install serverless@3 serverless-offline@13")
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "serverless@3", "serverless-offline@13"],
            cwd=SLS_DIR, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        done()
    return binary


class ServerlessOffline:
    def __init__(self) -> None:
        self.binary = ensure_serverless_offline()
        self.port = free_port()
        self.url = (
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/lamina-bench-dev-noop/invocations"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.launch_s = float("nan")

    def __enter__(self) -> ServerlessOffline:
        (SLS_DIR / "serverless.yml").write_text(
            SLS_YML.format(lambda_port=self.port, http_port=free_port(), ws_port=free_port())
        )
        (SLS_DIR / "app.py").write_text(HANDLER)
        env = dict(
            os.environ,
            PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off", SLS_DEPRECATION_DISABLE="*",
            AWS_ACCESS_KEY_ID="offline", AWS_SECRET_ACCESS_KEY="offline",
        )  # fmt: skip
        start = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(self.binary), "offline", "start"], cwd=SLS_DIR, env=env,
            stdout=open(SLS_DIR / "offline.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"serverless-offline exited: see {SLS_DIR / 'offline.log'}:\n"
                    + (SLS_DIR / "offline.log").read_text()[-2000:]
                )
            try:
                request = urllib.request.Request(self.url, data=b"{}", method="POST")
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status == 200:
                        self.launch_s = time.perf_counter() - start
                        return self
            except OSError:
                time.sleep(0.1)
        raise SystemExit("serverless-offline did not answer within 90 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ------------------------------------------------------------------ warm


def run_warm(args: argparse.Namespace, results: Results) -> None:
    raw: dict[str, Any] = {"lamina": {}, "single": {}, "sls": {}, "floor": {}}
    conns = (1, 32)
    # lamina as it starts by default (a serving process per CPU, at most 4: docs/workers.md)
    # and with one serving process (LAMINA_WORKERS=1), side by side in the same run.
    with (
        workdir("warm") as work,
        Lamina() as lamina,
        Lamina({"LAMINA_WORKERS": "1"}) as single,
    ):
        # the floor: the same handler in-process under uvicorn (bench/invoke.py's)
        (work / "floor.py").write_text(FLOOR_APP)
        floor_port = free_port()
        floor = subprocess.Popen(
            [str(Path(sys.executable).parent / "uvicorn"), "floor:app", "--port", str(floor_port),
             "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        floor_url = f"http://127.0.0.1:{floor_port}/"
        try:
            wait_healthy(floor_url, floor)
            lamina.create("noop", make_zip({"app.py": HANDLER}))
            lamina.create("sleep50", make_zip({"app.py": SLEEP50}))
            single.create("noop", make_zip({"app.py": HANDLER}))
            script = signed_invoke_script(lamina.endpoint, "noop", work)
            lamina_url = f"{lamina.endpoint}/2015-03-31/functions/noop/invocations"
            (work / "single").mkdir(exist_ok=True)
            single_script = signed_invoke_script(single.endpoint, "noop", work / "single")
            single_url = f"{single.endpoint}/2015-03-31/functions/noop/invocations"
            post = work / "post.lua"
            post.write_text('wrk.method = "POST"\nwrk.body = "{}"\n')
            with ServerlessOffline() as sls:
                raw["sls_launch_s"] = sls.launch_s
                done = timed("warm-up (32 connections each)")
                wrk(lamina_url, 32, 2, script)
                wrk(single_url, 32, 2, single_script)
                wrk(sls.url, 32, 2, post)
                wrk(floor_url, 32, 1, None)
                done()
                targets = {
                    "floor": (floor_url, None), "lamina": (lamina_url, script),
                    "single": (single_url, single_script), "sls": (sls.url, post),
                }  # fmt: skip
                for c in conns:
                    done = timed(f"{c} connection(s)")
                    # Rounds, each server in turn and the turn order rotated per round, so
                    # that the machine's drift (it is shared) lands on all alike; medians.
                    rounds: dict[str, list[dict[str, float]]] = {key: [] for key in targets}
                    for n in range(args.rounds):
                        keys = list(targets)
                        for key in keys[n % len(keys) :] + keys[: n % len(keys)]:
                            url, lua = targets[key]
                            rounds[key].append(wrk(url, c, args.seconds, lua))
                    for key, runs in rounds.items():
                        raw[key][str(c)] = {
                            metric: statistics.median(run[metric] for run in runs)
                            for metric in ("rps", "p50_ms", "p99_ms", "errors")
                        }
                        raw[key][f"{c}-rounds"] = runs
                    done()
                sls_pids = [sls.proc.pid, *descendants(sls.proc.pid)] if sls.proc else []
                raw["sls_memory_kb"] = total_memory(sls_pids)
                raw["sls_processes"] = len(sls_pids)
            raw["lamina_memory_kb"] = total_memory([lamina.pid, *descendants(lamina.pid)])
            raw["lamina_processes"] = 1 + len(descendants(lamina.pid))
            # 8 concurrent 50 ms invokes, warm (after one warm-up burst)
            path, headers = sign("127.0.0.1", lamina.port, "sleep50", b"{}")
            asyncio.run(burst("127.0.0.1", lamina.port, [(path, headers, b"{}")] * 8))
            eights = []
            for _ in range(5):
                total, done_list = asyncio.run(
                    burst("127.0.0.1", lamina.port, [(path, headers, b"{}")] * 8)
                )
                eights.append((total * 1000, sum(1 for d in done_list if d[1] != 200)))
            raw["eight_50ms"] = eights
        finally:
            floor.terminate()
            floor.wait()
    rows = []
    labels = {
        "lamina": "lamina", "single": "lamina, LAMINA_WORKERS=1",
        "sls": "serverless-offline", "floor": "floor",
    }  # fmt: skip
    for c in conns:
        s = raw["sls"][str(c)]
        for key, label in labels.items():
            m = raw[key][str(c)]
            rows.append(
                f"| {c} | {label} | {m['p50_ms']:.3f} | {m['p99_ms']:.2f} | {m['rps']:.0f} | "
                f"{m['errors']:.0f} | **{m['rps'] / s['rps']:.2f}** | {m['p50_ms'] / s['p50_ms']:.2f} |"
            )
    eight = min(e[0] for e in raw["eight_50ms"])
    eight_med = summary([e[0] for e in raw["eight_50ms"]])["p50"]
    sm, lm = raw["sls_memory_kb"], raw["lamina_memory_kb"]
    md = f"""## Warm invoke: lamina against serverless-offline (`peers.py warm`)

wrk over loopback keep-alive connections: {args.rounds} rounds of {args.seconds:.0f} s per server, each
round every server in turn (the order rotated per round), medians; after a 2 s warm-up at
32 connections each. lamina: SigV4-signed Invoke replayed by wrk; serverless-offline 13
(serverless 3.40, Node {node_version()}): its unsigned Invoke API on lambdaPort; floor: the same
handler in-process under uvicorn (bench/invoke.py's). lamina runs twice: as it starts by default
({auto_workers()} serving processes here: docs/workers.md) and with one (LAMINA_WORKERS=1).
Handler `return {{}}`. Milliseconds.

| conns | server | p50 | p99 | req/s | non-2xx | ÷ sls req/s | ÷ sls p50 |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Targets: lamina p50 ≤ 0.3 ms at 1 connection; ≥ 6,000 req/s and ≥ 1.1x serverless-offline at 32.
serverless-offline launch to first answer: {raw["sls_launch_s"]:.1f} s; after the run it held
{raw["sls_processes"]} processes, RSS {sm["rss"] / 1024:.0f} MB, PSS {sm["pss"] / 1024:.0f} MB. lamina (server,
zygote, environments): {raw["lamina_processes"]} processes, RSS {lm["rss"] / 1024:.0f} MB, PSS {lm["pss"] / 1024:.0f} MB.
8 concurrent 50 ms invokes on lamina (warm, 5 tries): best {eight:.0f} ms, median {eight_med:.0f} ms,
errors {sum(e[1] for e in raw["eight_50ms"])} (target ≤ 60 ms).
"""
    print(md)
    results.put("warm", md, raw)


def node_version() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return "?"


# ------------------------------------------------------------------ density


def env_pids(lamina: Lamina) -> list[int]:
    return lamina.env_roots()


def ric_idle_memory(count: int) -> dict[str, Any]:
    """`count` awslambdaric processes after one invoke each, idle in /next: memory each."""
    with workdir("ric-idle") as work:
        (work / "app.py").write_text(HOLD)
        api = FakeRuntimeApi()
        api.give([b"{}"] * count)
        procs = [launch_ric(api.address, work) for _ in range(count)]
        api.wait_responses(count, 60)
        time.sleep(0.5)
        mem = total_memory([p.pid for p in procs])
        stop(procs)
        api.close()
    return {"count": count, **{k: v / count for k, v in mem.items()}}


def health_ms(lamina: Lamina) -> float:
    """How long lamina takes to answer /health (nan past 10 s): is the server responsive?"""
    conn = http.client.HTTPConnection("127.0.0.1", lamina.port, timeout=10)
    start = time.perf_counter()
    try:
        conn.request("GET", "/health")
        conn.getresponse().read()
        return (time.perf_counter() - start) * 1000
    except OSError:
        return float("nan")
    finally:
        conn.close()


async def _hold_all(
    lamina: Lamina, target: int, hold_s: float, log: list[dict[str, Any]], snapshot: dict[str, Any]
) -> tuple[float, list[tuple[float, int, bytes]]]:
    """`target` invocations that all return at the same moment, `hold_s` from now; a
    memory snapshot is taken once all environments are up (or growth stalls)."""
    payload = json.dumps({"until": time.time() + hold_s}).encode()
    path, headers = sign("127.0.0.1", lamina.port, "hold", payload)
    task = asyncio.create_task(
        burst("127.0.0.1", lamina.port, [(path, headers, payload)] * target, timeout=hold_s + 240)
    )
    start = time.perf_counter()
    best, best_at = 0, start
    while not task.done() and not snapshot:
        await asyncio.sleep(1.0)
        health = await asyncio.to_thread(health_ms, lamina)
        count = len(env_pids(lamina))  # one process per environment
        avail_mb = meminfo()["MemAvailable"] / 1024
        now = time.perf_counter()
        log.append(
            {
                "t": round(now - start, 1),
                "envs": count,
                "avail_mb": round(avail_mb),
                "health_ms": health,
            }
        )
        if count > best:
            best, best_at = count, now
        if count >= target or avail_mb < 3000 or now - best_at > 15 or now - start > hold_s - 10:
            procs = lamina.env_processes()
            snapshot.update(
                envs=count, processes=len(procs), mem=total_memory(procs), at_s=now - start,
                stopped="" if count >= target else ("memory" if avail_mb < 3000 else "stalled"),
            )  # fmt: skip
    return await task


def run_density(args: argparse.Namespace, results: Results) -> None:
    raw: dict[str, Any] = {}
    target = args.envs
    done = timed("awslambdaric idle processes, memory each")
    raw["ric"] = ric_idle_memory(20)
    done()
    before = meminfo()
    # The default memory budget (8x RAM as a sum of MemorySize, with a MemAvailable
    # check) admits them; only the account's concurrency (Lambda's default 1,000) is raised.
    env = {"LAMINA_CONCURRENCY_LIMIT": str(max(2000, target * 2))}
    with workdir("density") as work, Lamina(env) as lamina:
        lamina.create("hold", make_zip({"app.py": HOLD}), MemorySize=128, Timeout=300)
        lamina.invoker().invoke("hold")
        zygote_mem = total_memory(lamina.zygotes())
        server_before = memory(lamina.pid)
        log: list[dict[str, Any]] = []
        done = timed(f"holding up to {target} overlapping invocations")
        start = time.perf_counter()
        busy: dict[str, Any] = {}
        total, answers = asyncio.run(_hold_all(lamina, target, args.hold, log, busy))
        done()
        statuses: dict[int, int] = {}
        for a in answers:
            statuses[a[1]] = statuses.get(a[1], 0) + 1
        pids = {a[2] for a in answers if a[1] == 200 and len(a[2]) == 18}
        time.sleep(3)  # all idle now
        reported = lamina.environments() or []
        envs = reported or env_pids(lamina)
        # sandboxed, an environment may be several processes: all count
        procs = lamina.env_processes()
        mem = total_memory(procs)
        # by depth under the zygote: 1 = the forked child (keeper when sandboxed), 2 = init, 3 = function
        by_depth: dict[int, list[int]] = {}
        for root in lamina.env_roots():
            level, depth = [root], 1
            while level:
                by_depth.setdefault(depth, []).extend(level)
                level, depth = [c for p in level for c in children(p)], depth + 1
        raw["by_depth"] = {d: {"n": len(ps), **total_memory(ps)} for d, ps in by_depth.items()}
        server = memory(lamina.pid)
        after = meminfo()
        raw.update(
            target=target, reached=busy.get("envs", 0), busy=busy, distinct_pids=len(pids),
            idle_envs=len(envs), env_processes=len(procs), statuses=statuses, fill_s=total, log=log, env_mem_kb=mem,
            zygote_mem_kb=zygote_mem, server_kb=server, server_before_kb=server_before,
            used_delta_mb=(before["MemAvailable"] - after["MemAvailable"]) / 1024,
            elapsed_s=time.perf_counter() - start, reported_envs=len(reported),
            reported_kb={k: sum(int(r.get(k, 0)) for r in reported) for k in ("rss_kb", "pss_kb", "uss_kb")},
        )  # fmt: skip
        done = timed("warm invokes with the environments idle")
        script = signed_invoke_script(lamina.endpoint, "hold", work)
        raw["wrk1"] = wrk(
            f"{lamina.endpoint}/2015-03-31/functions/hold/invocations", 1, args.seconds, script
        )
        inv = lamina.invoker()
        raw["raw_client_ms"] = [inv.invoke("hold")[0] for _ in range(300)]
        inv.close()
        raw["idle_envs_after"] = len(env_pids(lamina))
        done()
        done = timed("stopping lamina")
    done()
    n = max(1, raw["reported_envs"] or raw["idle_envs"])
    mem, ric = raw["env_mem_kb"], raw["ric"]
    per = {k: v / n for k, v in mem.items()}
    stopped_early = raw["reached"] < target
    bm = raw["busy"].get("mem", {"rss": 0, "pss": 0, "uss": 0})
    bn = max(1, raw["busy"].get("envs", 0))
    fill = next((e["t"] for e in raw["log"] if e["envs"] >= raw["reached"]), float("nan"))
    rep = raw["reported_kb"]
    healths = [e["health_ms"] for e in raw["log"]]
    answered = [h for h in healths if h == h]
    max_health = f"{max(answered):.0f}" if answered else "—"
    max_health += f", {len(healths) - len(answered)} of {len(healths)} probes unanswered"
    med_health = f"{summary(healths)['p50']:.0f}" if healths else "—"
    depths = "; ".join(
        f"{d}: {v['n']} × {v['pss'] / max(1, v['n']) / 1024:.2f} / {v['uss'] / max(1, v['n']) / 1024:.2f} MB"
        for d, v in sorted(raw["by_depth"].items())
    )
    md = f"""## Density: warm environments of a 128 MB no-op function (`peers.py density`)

{target} overlapping invocations of a 128 MB function that sleeps until a common moment
{args.hold:.0f} s after they are sent (so each needs its own environment), with
LAMINA_CONCURRENCY_LIMIT={env["LAMINA_CONCURRENCY_LIMIT"]} and the default memory budget (8x RAM as a
sum of MemorySize, each start also checked against MemAvailable).
Environments counted from /proc while they start (the serving processes' children other
than zygotes and workers, plus the zygotes' children) and by lamina's /_lamina/environments at the end. Memory from
/proc/<pid>/smaps_rollup of every process of every environment (sandboxed, one may be
several processes) once all were up (busy, sleeping in the
handler) and again once they had all answered (idle); USS = private pages. Baseline: 20
`python -m awslambdaric` processes idle in /next after one invoke each.

| figure | value |
|---|---|
| environments up / requested | {raw["reached"]} / {target}{" (stopped: " + raw["busy"].get("stopped", "") + ")" if stopped_early else ""}, all up after {fill:.0f} s |
| answers | {raw["statuses"]} from {raw["distinct_pids"]} distinct environments |
| all up, busy: processes; RSS / PSS / USS total | {raw["busy"].get("processes", 0)}; {bm["rss"] / 1024:.0f} / {bm["pss"] / 1024:.0f} / {bm["uss"] / 1024:.0f} MB |
| all up, busy: PSS / USS per environment | {bm["pss"] / bn / 1024:.2f} / {bm["uss"] / bn / 1024:.2f} MB |
| idle afterwards: environments (lamina's count), processes | {raw["reported_envs"]}, {raw["env_processes"]} |
| idle: RSS / PSS / USS total | {mem["rss"] / 1024:.0f} / {mem["pss"] / 1024:.0f} / {mem["uss"] / 1024:.0f} MB |
| idle: RSS / PSS / USS per environment | {per["rss"] / 1024:.2f} / {per["pss"] / 1024:.2f} / {per["uss"] / 1024:.2f} MB |
| idle PSS / USS per process by depth in an environment (1 = its first process) | {depths} |
| lamina's own PSS total (/_lamina/environments) | {rep["pss_kb"] / 1024:.0f} MB |
| awslambdaric per process RSS / PSS / USS | {ric["rss"] / 1024:.2f} / {ric["pss"] / 1024:.2f} / {ric["uss"] / 1024:.2f} MB |
| **awslambdaric PSS ÷ lamina PSS per environment (idle)** | **{ric["pss"] / max(1, per["pss"]):.2f}x** |
| zygote RSS / PSS | {raw["zygote_mem_kb"]["rss"] / 1024:.0f} / {raw["zygote_mem_kb"]["pss"] / 1024:.0f} MB |
| server RSS before → with the environments | {raw["server_before_kb"]["rss"] / 1024:.0f} → {raw["server_kb"]["rss"] / 1024:.0f} MB |
| lamina /health while environments start (1 probe/s, 10 s timeout) | p50 {med_health} ms, max {max_health} |
| host MemAvailable drop (whole machine, shared) | {raw["used_delta_mb"]:.0f} MB |
| warm invoke at 1 connection, wrk, environments idle | p50 {raw["wrk1"]["p50_ms"]:.3f} ms, p99 {raw["wrk1"]["p99_ms"]:.2f} ms, {raw["wrk1"]["rps"]:.0f} req/s |
| warm invoke, raw SigV4 client, 300 calls | p50 {summary(raw["raw_client_ms"])["p50"]:.2f} ms, p99 {summary(raw["raw_client_ms"])["p99"]:.2f} ms |

Targets: ≥ 1,000 idle warm environments, warm p50 ≤ 1 ms with them idle.
"""
    print(md)
    results.put("density", md, raw)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("section", choices=[*ORDER, "all"])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="warm: rounds per figure")
    parser.add_argument("--envs", type=int, default=1000, help="density: environments to try for")
    parser.add_argument("--hold", type=float, default=75, help="density: seconds the calls last")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS-peers.md")
    args = parser.parse_args()
    results = Results(args.out, "lamina beside its peers", ORDER)
    runs = {"warm": run_warm, "density": run_density}
    for section in ORDER if args.section == "all" else [args.section]:
        runs[section](args, results)


if __name__ == "__main__":
    sys.exit(main())
