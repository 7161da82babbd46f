"""The sandbox's cost: a new environment's first invoke and a warm invoke, sandbox on
versus off, in the same run on the same machine, at equal memory.

    python bench/sandbox.py [--cold 30] [--warm 1000] [--repeat 3] [--memory 128 1769] [--contend N]

Two lamina servers (LAMINA_SANDBOX=1 and =0) run side by side, each with one no-op
Python function per memory size; samples alternate between all of them so that the
machine's noise falls on each alike. Memory matters: a sandboxed environment gets a
CPU share in proportion to its MemorySize (1,769 MB = one full vCPU's share, as on
Lambda), which an unsandboxed one does not have, so each size is compared with itself.

- warm: one keep-alive connection, requests signed before the clock starts (only the
  round trip is timed), `--warm` calls per function after a warm-up;
- cold: `LAMINA_IDLE_ENVIRONMENT_S=0.25` lets the reaper stop each environment; the
  bench waits until it is gone, then times the next call (a new environment), and
  reads lamina's own Init Duration from the REPORT line.

Results go to bench/RESULTS-sandbox.md (and .json). Nothing here asserts timing.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import Lamina, Results, make_zip, pct, timed

HERE = Path(__file__).resolve().parent
# The log stream names the environment (every sandboxed function is pid 2).
NOOP = "import os\n\ndef handler(event, context):\n    return os.environ['AWS_LAMBDA_LOG_STREAM_NAME']\n"
WARMUP = 200


def _row(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p90": pct(values, 0.90),
        "p99": pct(values, 0.99),
        "mean": statistics.fmean(values),
    }


def _cold(lamina: Lamina, name: str) -> tuple[float, float | None, str]:
    started = time.perf_counter()
    response = lamina.client.invoke(FunctionName=name, LogType="Tail")
    elapsed = (time.perf_counter() - started) * 1000
    environment = json.loads(response["Payload"].read())
    tail = base64.b64decode(response["LogResult"]).decode()
    init = None
    if "Init Duration: " in tail:
        init = float(tail.split("Init Duration: ")[1].split(" ms")[0])
    return elapsed, init, str(environment)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", type=int, default=30)
    parser.add_argument("--warm", type=int, default=1000)
    # Blocks of --warm calls, each giving its own on/off ratio: the spread is the noise.
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", type=int, nargs="+", default=[128, 1769])
    # Busy loops (nice 0) beside the warm calls: a CPU share only shows under contention.
    parser.add_argument("--contend", type=int, default=0)
    args = parser.parse_args()
    env = {"LAMINA_IDLE_ENVIRONMENT_S": "0.25"}
    with (
        Lamina({**env, "LAMINA_SANDBOX": "1"}) as on,
        Lamina({**env, "LAMINA_SANDBOX": "0"}) as off,
    ):
        servers = {"on": on, "off": off}
        package = make_zip({"app.py": NOOP})
        names = {}
        for label, lamina in servers.items():
            for memory in args.memory:
                name = f"noop{memory}"
                lamina.create(name, package, MemorySize=memory, Timeout=30)
                names[label, memory] = name
        keys = list(names)

        done = timed(f"cold: {args.cold} new environments per function")
        cold: dict[Any, list[float]] = {k: [] for k in keys}
        init: dict[Any, list[float]] = {k: [] for k in keys}
        seen: dict[Any, set[str]] = {k: set() for k in keys}
        for _ in range(args.cold):
            for key in keys:
                lamina = servers[key[0]]
                lamina.wait_no_environments(names[key])
                elapsed, init_ms, environment = _cold(lamina, names[key])
                if init_ms is None or environment in seen[key]:
                    continue  # not a new environment: not a cold sample
                seen[key].add(environment)
                cold[key].append(elapsed)
                init[key].append(init_ms)
        done()

        done = timed(f"warm: {args.warm} calls per function, alternating")
        burners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.contend)
        ]
        invokers = {k: servers[k[0]].invoker() for k in keys}
        warm: dict[Any, list[float]] = {k: [] for k in keys}
        blocks: list[dict[Any, list[float]]] = [{k: [] for k in keys} for _ in range(args.repeat)]
        shuffled = random.Random(4)  # a fresh order each round: no function always follows another
        for i in range(WARMUP + args.warm * args.repeat):
            order = list(keys)
            shuffled.shuffle(order)
            for key in order:
                elapsed, status, _, _ = invokers[key].invoke(names[key])
                assert status == 200, status
                if i >= WARMUP:
                    warm[key].append(elapsed)
                    blocks[(i - WARMUP) // args.warm][key].append(elapsed)
        for invoker in invokers.values():
            invoker.close()
        for burner in burners:
            burner.kill()
            burner.wait()
        done()

    contended = f", {args.contend} busy loops beside the warm calls" if args.contend else ""
    raw = {
        f"{label} {memory}": {
            "warm": _row(warm[label, memory]),
            "cold": _row(cold[label, memory]) if cold[label, memory] else None,
            "init": _row(init[label, memory]) if init[label, memory] else None,
        }
        for label, memory in keys
    }
    lines = [
        f"## Sandbox on vs off, at equal memory{contended} (same run, samples alternating)",
        "",
        f"Warm: {args.repeat} x {args.warm} calls per function over one keep-alive connection (SigV4-signed"
        " before timing), after a warm-up. Cold: the first call of a new environment"
        " (boto3 round trip) and lamina's Init Duration. Milliseconds; load average"
        f" {os.getloadavg()[0]:.2f} at the end.",
        "",
        "| MemorySize | sandbox | warm p50 | warm p90 | warm p99 | warm mean | cold p50 | Init Duration p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for memory in args.memory:
        for label in ("off", "on"):
            r = raw[f"{label} {memory}"]
            cold_p50 = f"{r['cold']['p50']:.2f}" if r["cold"] else "–"
            init_p50 = f"{r['init']['p50']:.2f}" if r["init"] else "–"
            w = r["warm"]
            lines.append(
                f"| {memory} MB | {label} | {w['p50']:.3f} | {w['p90']:.3f} | {w['p99']:.3f} |"
                f" {w['mean']:.3f} | {cold_p50} | {init_p50} |"
            )
    lines += ["", "Sandbox on ÷ off:", ""]
    for memory in args.memory:
        a, b = raw[f"on {memory}"], raw[f"off {memory}"]
        warm_ratio = a["warm"]["p50"] / b["warm"]["p50"]
        mean_ratio = a["warm"]["mean"] / b["warm"]["mean"]
        text = f"- {memory} MB: warm p50 {warm_ratio:.2f}x, warm mean {mean_ratio:.2f}x"
        per_block = [
            statistics.median(b[("on", memory)]) / statistics.median(b[("off", memory)])
            for b in blocks
        ]
        text += (
            " (p50 per block of "
            + f"{args.warm}: "
            + ", ".join(f"{r:.2f}x" for r in per_block)
            + ")"
        )
        if a["cold"] and b["cold"]:
            text += f", cold p50 {a['cold']['p50'] / b['cold']['p50']:.2f}x"
        lines.append(text)
    markdown = "\n".join(lines)
    print(markdown)
    Results(HERE / "RESULTS-sandbox.md", "Sandbox benchmark", ["sandbox", "contended"]).put(
        "contended" if args.contend else "sandbox", markdown, raw
    )


if __name__ == "__main__":
    main()
