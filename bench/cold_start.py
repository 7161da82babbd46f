"""Cold starts and scale-out: lamina against a fresh awslambdaric launch, in the same run.

    python bench/cold_start.py noop      # new-environment first invoke, no-op function
    python bench/cold_start.py boto3     # `import boto3` at module level: $LATEST vs SnapStart
    python bench/cold_start.py scaleout  # 200 simultaneous invokes of a 100 ms function, cold
    python bench/cold_start.py all       # the three, one after the other

Each subcommand starts a lamina of its own, prints its figures and rewrites its own
section of bench/RESULTS-cold.md (raw numbers in bench/RESULTS-cold.json); the other
sections are kept. Invokes go through the Invoke API with a raw SigV4-signed
http.client request (signed before the clock starts), not boto3's client.

How a sample gets a *new* environment: lamina runs with LAMINA_IDLE_ENVIRONMENT_S=0.25,
so the reaper stops the environment that served the previous sample; the bench waits
until that process is gone before the next sample, and checks that every sample was
served by a different pid. The baseline is `python -m awslambdaric app.handler` started
fresh against a minimal Runtime API served by this script, timed from launch to the
handler's response arriving — the same handler file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import (
    BOTO3_DISTS,
    HERE,
    FakeRuntimeApi,
    Lamina,
    Results,
    burst,
    dist_files,
    launch_ric,
    make_zip,
    sign,
    stop,
    summary,
    timed,
    workdir,
)  # fmt: skip

# Each environment answers with an id drawn on its first call (after any fork), so
# distinct answers count distinct environments, sandboxed (PID namespaces) or not.
IDENT = "if not ID:\n        ID.append(os.urandom(8).hex())\n    return ID[0]"
NOOP = f"import os\n\nID = []\n\n\ndef handler(event, context):\n    {IDENT}\n"
BOTO3_APP = (
    "import os\n\nimport boto3  # noqa: F401\n\nID = []\n\n\n"
    f"def handler(event, context):\n    {IDENT}\n"
)
SLEEPY = (
    "import os\nimport time\n\nID = []\n\n\n"
    f"def handler(event, context):\n    time.sleep(0.1)\n    {IDENT}\n"
)
REAP_ENV = {"LAMINA_IDLE_ENVIRONMENT_S": "0.25"}
NO_BOTO3_PRELOAD = "json,decimal,datetime,uuid,base64,hashlib,urllib.request"
ORDER = ["noop", "boto3", "scaleout"]


def new_env_series(
    lamina: Lamina, name: str, samples: int, qualifier: str | None = None
) -> dict[str, Any]:
    """First invoke of a new environment, `samples` times; the previous one is reaped first."""
    inv = lamina.invoker()
    times: list[float] = []
    pids: list[str] = []
    errors = 0
    for _ in range(samples):
        if not lamina.wait_no_environments(name, qualifier or "$LATEST"):
            raise SystemExit(
                f"{name}: environment not reaped: is LAMINA_IDLE_ENVIRONMENT_S honoured?"
            )
        time.sleep(0.05)
        ms, status, body, headers = inv.invoke(name, b"{}", qualifier)
        if status != 200 or "X-Amz-Function-Error" in headers:
            errors += 1
            print("   error:", status, body[:300])
            continue
        times.append(ms)
        pids.append(str(json.loads(body)))
    inv.close()
    return {"ms": times, "distinct_pids": len(set(pids)), "errors": errors}


def boto3_client_series(lamina: Lamina, name: str, samples: int) -> list[float]:
    times: list[float] = []
    for _ in range(samples):
        lamina.wait_no_environments(name)
        time.sleep(0.05)
        start = time.perf_counter()
        response = lamina.client.invoke(FunctionName=name, Payload=b"{}")
        times.append((time.perf_counter() - start) * 1000)
        response["Payload"].read()
    return times


def warm_series(lamina: Lamina, name: str, calls: int, qualifier: str | None = None) -> list[float]:
    inv = lamina.invoker()
    times = []
    inv.invoke(name, b"{}", qualifier)  # may start an environment: not counted
    for _ in range(calls):
        times.append(inv.invoke(name, b"{}", qualifier)[0])
    inv.close()
    return times


def ric_launches(
    task_root: Path, samples: int, warmups: int = 2, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """Fresh awslambdaric process per sample: launch -> handler's response at the Runtime API."""
    api = FakeRuntimeApi()
    times: list[float] = []
    failures = 0
    try:
        for i in range(warmups + samples):
            api.reset()
            api.give([b"{}"])
            start = time.perf_counter()
            proc = launch_ric(api.address, task_root, extra=extra)
            ok = api.wait_responses(1, 60)
            stop([proc])
            if not ok or not api.responses:
                failures += 1
                print("   awslambdaric failed:", api.errors[:1])
                continue
            if i >= warmups:
                times.append((api.responses[0][0] - start) * 1000)
    finally:
        api.close()
    return {"ms": times, "errors": failures}


def fmt(values: list[float]) -> str:
    s = summary(values)
    return f"{s['p50']:.1f} | {s['p99']:.1f} | {s['min']:.1f} | {s['max']:.1f}"


# ------------------------------------------------------------------ noop


def run_noop(args: argparse.Namespace, results: Results) -> None:
    raw: dict[str, Any] = {}
    with workdir("noop") as work:
        (work / "app.py").write_text(NOOP)
        done = timed("awslambdaric fresh launches")
        raw["awslambdaric"] = ric_launches(work, args.samples)
        done()
    with Lamina(REAP_ENV) as lamina:
        lamina.create("noop", make_zip({"app.py": NOOP}))
        warm_series(lamina, "noop", 1)  # code extracted, zygote warm
        done = timed("lamina new environments (raw SigV4)")
        raw["lamina"] = new_env_series(lamina, "noop", args.samples)
        done()
        done = timed("lamina new environments (boto3 client)")
        raw["lamina_boto3"] = boto3_client_series(lamina, "noop", max(10, args.samples // 3))
        done()
        raw["warm"] = warm_series(lamina, "noop", 300)
        done = timed("lamina first invoke of new functions")
        names = [f"noop-new-{i}" for i in range(args.samples)]
        for name in names:
            lamina.create(name, make_zip({"app.py": NOOP}))
        inv = lamina.invoker()
        raw["new_function"] = [inv.invoke(name)[0] for name in names]
        inv.close()
        done()
    # what the sandbox and the zygote each contribute: the same series without them
    for label, extra in (
        ("no_sandbox", {"LAMINA_SANDBOX": "0"}),
        ("no_zygote", {"LAMINA_ZYGOTES": "0"}),
    ):
        with Lamina({**REAP_ENV, **extra}) as lamina:
            lamina.create("noop", make_zip({"app.py": NOOP}))
            warm_series(lamina, "noop", 1)
            done = timed(f"lamina new environments, {label}")
            raw[label] = new_env_series(lamina, "noop", max(10, args.samples // 2))
            done()
    lam, ric = raw["lamina"]["ms"], raw["awslambdaric"]["ms"]
    ratio = summary(ric)["p50"] / summary(lam)["p50"]
    md = f"""## New environment, no-op Python function (`cold_start.py noop`)

First invoke served by a new environment, end to end through the Invoke API (raw SigV4
client over keep-alive http.client), against a fresh `python -m awslambdaric app.handler`
launched against a minimal Runtime API in the bench (launch → handler's response
received). Same handler file. Milliseconds.

| what | samples | p50 | p99 | min | max |
|---|---|---|---|---|---|
| lamina, new environment (idle one reaped between samples) | {len(lam)} | {fmt(lam)} |
| lamina, same, with boto3's client (client overhead included) | {len(raw["lamina_boto3"])} | {fmt(raw["lamina_boto3"])} |
| lamina, first invoke of a new function (CreateFunction Active) | {len(raw["new_function"])} | {fmt(raw["new_function"])} |
| lamina with LAMINA_SANDBOX=0, new environment | {len(raw["no_sandbox"]["ms"])} | {fmt(raw["no_sandbox"]["ms"])} |
| lamina with LAMINA_ZYGOTES=0 (exec, not fork), new environment | {len(raw["no_zygote"]["ms"])} | {fmt(raw["no_zygote"]["ms"])} |
| lamina, warm invoke (same client, for reference) | {len(raw["warm"])} | {fmt(raw["warm"])} |
| awslambdaric, fresh launch → first response | {len(ric)} | {fmt(ric)} |

**awslambdaric p50 ÷ lamina new-environment p50 = {ratio:.1f}x** (target ≥ 4x; lamina target p50 ≤ 10 ms, p99 ≤ 25 ms).
Distinct environments (ids) over the lamina samples: {raw["lamina"]["distinct_pids"]} of {len(lam)}; errors: lamina {raw["lamina"]["errors"]}, awslambdaric {raw["awslambdaric"]["errors"]}.
"""
    print(md)
    results.put("noop", md, raw)


# ------------------------------------------------------------------ boto3


def run_boto3(args: argparse.Namespace, results: Results) -> None:
    raw: dict[str, Any] = {}
    done = timed("building the boto3 zip")
    files = dist_files(BOTO3_DISTS)
    files["app.py"] = BOTO3_APP
    package = make_zip(files)
    raw["zip_mb"] = len(package) / 1e6
    done()
    with workdir("boto3") as work:
        for path, content in files.items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        done = timed("awslambdaric fresh launches, boto3 in the zip")
        raw["awslambdaric"] = ric_launches(work, max(10, args.samples // 2))
        done()
        # as on Lambda, whose /var/task is read-only: no bytecode cache for the zip's modules
        for cache in list(work.rglob("__pycache__")):
            shutil.rmtree(cache)
        done = timed("awslambdaric fresh launches, no bytecode cache")
        raw["awslambdaric_nopyc"] = ric_launches(
            work, 10, warmups=0, extra={"PYTHONDONTWRITEBYTECODE": "1"}
        )
        done()
    samples = min(args.samples, 30)
    variants = [("preload", {}), ("no_preload", {"LAMINA_ZYGOTE_PRELOAD": NO_BOTO3_PRELOAD})]
    for label, extra in variants:
        with Lamina({**REAP_ENV, **extra}) as lamina:
            done = timed(f"[{label}] create (plain and SnapStart) + publish")
            lamina.create("b3", package)
            warm_series(lamina, "b3", 1)
            lamina.create("b3snap", package, SnapStart={"ApplyOn": "PublishedVersions"})
            warm_series(lamina, "b3snap", 1)
            version = lamina.publish("b3snap")
            done()
            done = timed(f"[{label}] $LATEST new environments, function without SnapStart")
            raw[f"{label}_latest"] = new_env_series(lamina, "b3", samples)
            done()
            done = timed(f"[{label}] SnapStart version {version} new environments")
            raw[f"{label}_snap"] = new_env_series(lamina, "b3snap", samples, version)
            done()
            done = timed(f"[{label}] $LATEST new environments of the SnapStart function")
            raw[f"{label}_snap_latest"] = new_env_series(lamina, "b3snap", samples)
            done()
            raw[f"{label}_warm"] = warm_series(lamina, "b3", 100)
    rows, ratios = [], []
    for label, text in (
        ("preload", "zygote preloads boto3 (default)"),
        ("no_preload", "zygote without boto3 (LAMINA_ZYGOTE_PRELOAD)"),
    ):
        latest, snap = raw[f"{label}_latest"]["ms"], raw[f"{label}_snap"]["ms"]
        rows.append(f"| {text}: $LATEST, no SnapStart | {len(latest)} | {fmt(latest)} |")
        rows.append(f"| {text}: published version, SnapStart | {len(snap)} | {fmt(snap)} |")
        snap_latest = raw[f"{label}_snap_latest"]["ms"]
        rows.append(
            f"| {text}: $LATEST of the SnapStart function | {len(snap_latest)} | {fmt(snap_latest)} |"
        )
        rows.append(
            f"| {text}: warm invoke | {len(raw[label + '_warm'])} | {fmt(raw[label + '_warm'])} |"
        )
        ratios.append(
            (
                text,
                summary(latest)["p50"] / summary(snap)["p50"],
                summary(raw["awslambdaric"]["ms"])["p50"] / summary(snap)["p50"],
            )
        )
    ric = raw["awslambdaric"]["ms"]
    nopyc = raw["awslambdaric_nopyc"]["ms"]
    rows.append(
        f"| awslambdaric fresh launch, no bytecode cache (read-only /var/task, as on Lambda) "
        f"| {len(nopyc)} | {fmt(nopyc)} |"
    )
    rows.append(
        f"| awslambdaric fresh launch, `import boto3` from the zip, bytecode cached | {len(ric)} | {fmt(ric)} |"
    )
    ratio_lines = "\n".join(
        f"- {text}: **$LATEST p50 ÷ SnapStart p50 = {r:.1f}x**, awslambdaric ÷ SnapStart = {q:.1f}x"
        for text, r, q in ratios
    )
    md = f"""## New environment, `import boto3` at module level (`cold_start.py boto3`)

The zip ({raw["zip_mb"]:.1f} MB) carries boto3, botocore, jmespath, s3transfer, dateutil,
urllib3 and six from the bench's venv; `app.py` imports boto3 at module level. New
environments as in the no-op section (idle one reaped between samples). lamina's zygote
preloads boto3 by default (`zygote_preload`), so $LATEST already finds `boto3` in
`sys.modules` and never reads the zip's copy; the second lamina runs with a zygote that
does not preload it, which is what "without SnapStart" costs a function whose imports
the zygote does not know. "$LATEST, no SnapStart" is a function without SnapStart; the
SnapStart function is measured on its published version and on its $LATEST (which Lambda
never snapshots: ApplyOn PublishedVersions). At most 30 samples per series. Milliseconds.

| what | samples | p50 | p99 | min | max |
|---|---|---|---|---|---|
{chr(10).join(rows)}

{ratio_lines}

Targets: SnapStart p50 ≤ 15 ms and ≥ 10x faster than without it.
"""
    print(md)
    results.put("boto3", md, raw)


# ------------------------------------------------------------------ scale-out


def env_counter(
    lamina: Lamina, stop_flag: threading.Event, samples: list[tuple[float, int]]
) -> None:
    while not stop_flag.is_set():
        samples.append((time.perf_counter(), len(lamina.env_roots())))
        time.sleep(0.01)


def lamina_burst(lamina: Lamina, name: str, n: int) -> dict[str, Any]:
    payload = b"{}"
    path, headers = sign("127.0.0.1", lamina.port, name, payload)
    counts: list[tuple[float, int]] = []
    flag = threading.Event()
    poller = threading.Thread(target=env_counter, args=(lamina, flag, counts), daemon=True)
    before = len(lamina.env_roots())
    poller.start()
    t0 = time.perf_counter()
    total, done = asyncio.run(burst("127.0.0.1", lamina.port, [(path, headers, payload)] * n))
    flag.set()
    poller.join()
    ok = [d for d in done if d[1] == 200 and len(d[2]) == 18]
    pids = {d[2] for d in ok}
    peak = max((c for _, c in counts), default=0)
    reached = next(((t - t0) for t, c in counts if c - before >= min(n, len(pids))), float("nan"))
    statuses: dict[int, int] = {}
    for d in done:
        statuses[d[1]] = statuses.get(d[1], 0) + 1
    return {
        "total_s": total,
        "errors": n - len(ok),
        "statuses": statuses,
        "distinct_pids": len(pids),
        "peak_children": peak,
        "children_before": before,
        "s_to_all_envs": reached,
        "p50_s": summary([d[0] for d in done])["p50"],
        "sample_errors": [d[2][:200].decode(errors="replace") for d in done if d not in ok][:3],
    }


def ric_burst(n: int) -> dict[str, Any]:
    with workdir("ric-burst") as work:
        (work / "app.py").write_text(SLEEPY)
        api = FakeRuntimeApi()
        api.give([b"{}"] * n)
        start = time.perf_counter()
        procs = [launch_ric(api.address, work) for _ in range(n)]
        ok = api.wait_responses(n, 120)
        total = (api.responses[-1][0] - start) if api.responses else float("nan")
        stop(procs)
        api.close()
        return {"total_s": total, "responses": len(api.responses), "complete": ok}


def run_scaleout(args: argparse.Namespace, results: Results) -> None:
    n = args.burst
    raw: dict[str, Any] = {}
    # lamina's default memory budget is 80% of RAM as a sum of MemorySize (24 GB -> ~150
    # environments of 128 MB): measured as is, then with a budget that admits the burst.
    budget = str(max(65536, 2 * n * 128))
    for label, extra in (("default", {}), ("budget", {"LAMINA_MEMORY_BUDGET_MB": budget})):
        env = {"LAMINA_CONCURRENCY_LIMIT": str(max(1000, 2 * n)), **extra}
        with Lamina(env) as lamina:
            lamina.create("sleepy", make_zip({"app.py": SLEEPY}), MemorySize=128)
            done = timed(f"[{label}] lamina cold burst of {n}")
            raw[f"{label}_cold"] = lamina_burst(lamina, "sleepy", n)
            done()
            time.sleep(1)
            done = timed(f"[{label}] lamina warm burst of {n}")
            raw[f"{label}_warm"] = lamina_burst(lamina, "sleepy", n)
            done()
    done = timed(f"{n} fresh awslambdaric launches at once")
    raw["awslambdaric"] = ric_burst(n)
    done()
    ric = raw["awslambdaric"]
    rows = []
    for label, text in (
        ("default", "default memory budget"),
        ("budget", f"LAMINA_MEMORY_BUDGET_MB={budget}"),
    ):
        for phase in ("cold", "warm"):
            r = raw[f"{label}_{phase}"]
            up = f"{r['s_to_all_envs']:.2f}" if phase == "cold" else "—"
            rows.append(
                f"| lamina, {text}, {phase} | {r['total_s']:.2f} | {r['p50_s']:.2f} | "
                f"{r['errors']} {r['statuses']} | {r['distinct_pids']} | {r['peak_children']} | {up} |"
            )
    cold = raw["budget_cold"]
    errs = raw["default_cold"]["sample_errors"] + cold["sample_errors"]
    md = f"""## Scale-out: {n} simultaneous invokes of a 100 ms function (`cold_start.py scaleout`)

{n} raw SigV4 Invoke requests sent at once over {n} pre-opened connections (asyncio), to
a 128 MB function with no environment yet (cold), then again once they are warm.
Environments counted by the ids in the responses and by polling lamina's environment processes every
10 ms ("envs all up after": first time the count reached the number of distinct pids
served). The baseline launches {n} `python -m awslambdaric` processes at once against
the bench's Runtime API, one event each (their own 100 ms sleep included).

| what | all done (s) | p50 done (s) | errors {{status: count}} | distinct envs (pids) | peak env processes | envs all up after (s) |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
| {n} fresh awslambdaric launches | {ric["total_s"]:.2f} | — | {n - ric["responses"]} | {ric["responses"]} | — | — |

**awslambdaric ÷ lamina cold burst (budget admitting it) = {ric["total_s"] / cold["total_s"]:.1f}x**;
target: no errors, 0 → {n} environments in ≤ 3 s.{" First errors: " + repr(errs[:2]) if errs else ""}
"""
    print(md)
    results.put("scaleout", md, raw)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("section", choices=[*ORDER, "all"])
    parser.add_argument(
        "--samples", type=int, default=50, help="new-environment samples per series"
    )
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS-cold.md")
    args = parser.parse_args()
    results = Results(args.out, "Cold-start and scale-out benchmarks", ORDER)
    runs = {"noop": run_noop, "boto3": run_boto3, "scaleout": run_scaleout}
    for section in ORDER if args.section == "all" else [args.section]:
        runs[section](args, results)


if __name__ == "__main__":
    sys.exit(main())
