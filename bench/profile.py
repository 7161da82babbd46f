"""Where the time goes: py-spy over a lamina (server, zygote, environments) during a run.

    python bench/profile.py newenv [--samples 60]   # new-environment first invokes
    python bench/profile.py warm [--seconds 5]      # warm invokes, wrk at 1 connection
    python bench/profile.py burst [--burst 200]     # a cold burst of a 100 ms function

Records with `py-spy record --subprocesses --format raw` (py-spy is in the test extras)
and `--gil` (samples only threads running Python, so waiting in select/recv does not
count) into bench/.work/profile-<what>.txt (collapsed stacks, for flamegraph tools); prints
the heaviest frames per process kind (server / zygote / environment): self time and
inclusive time. Profiling slows everything it watches; use it for shares, not figures.
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchlib import VENV_BIN, WORK, Lamina, make_zip
from cold_start import NOOP, REAP_ENV, SLEEPY, lamina_burst, new_env_series, warm_series
from invoke import signed_invoke_script, wrk


def record(lamina: Lamina, out: Path) -> subprocess.Popen[bytes]:
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(VENV_BIN / "py-spy"), "record", "--pid", str(lamina.pid), "--subprocesses",
         "--rate", "1000", "--gil", "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.5)  # py-spy attaches
    return proc


def kind(frames: list[str]) -> str:
    """Nested `process ...` frames name the process; forks of a zygote share its command
    line, so an environment is told from the zygote by its frames."""
    process = next((f for f in reversed(frames) if f.startswith("process ")), "?")
    if "zygote.py" in process:
        if any(m in f for f in frames for m in ("_child (", "runtime.py", "sandbox.py")):
            return "environment (forked from the zygote)"
        return "zygote"
    if "lamina serve" in process or "lamina/cli" in ";".join(frames):
        return "server"
    return process[:80]


def summarize(path: Path, top: int) -> str:
    self_time: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    incl: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        who = kind(frames)
        frames = [re.sub(r" \(/[^)]*/", " (", f) for f in frames if not f.startswith("process ")]
        n = int(count)
        totals[who] += n
        if frames:
            self_time[who][frames[-1]] += n
        for f in set(frames):
            incl[who][f] += n
    lines = []
    for who, total in totals.most_common():
        lines.append(f"\n== {who}: {total} samples")
        lines.append("  self:")
        lines += [f"    {n * 100 / total:5.1f}%  {f}" for f, n in self_time[who].most_common(top)]
        lines.append("  inclusive:")
        lines += [f"    {n * 100 / total:5.1f}%  {f}" for f, n in incl[who].most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["newenv", "warm", "burst"])
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    out = WORK / f"profile-{args.what}.txt"
    env = {"burst": {"LAMINA_MEMORY_BUDGET_MB": "65536"}, "newenv": REAP_ENV}.get(args.what, {})
    with Lamina(env) as lamina:
        lamina.create("noop", make_zip({"app.py": NOOP}))
        lamina.create("sleepy", make_zip({"app.py": SLEEPY}), MemorySize=128)
        warm_series(lamina, "noop", 1)
        spy = record(lamina, out)
        if args.what == "burst":
            result = lamina_burst(lamina, "sleepy", args.burst)
            print(f"cold burst under the profiler: {result['total_s']:.2f} s, {result['statuses']}")
        elif args.what == "newenv":
            result = new_env_series(lamina, "noop", args.samples)
            ms = sorted(result["ms"])
            print(f"new environment under the profiler: p50 {ms[len(ms) // 2]:.1f} ms")
        else:
            script = signed_invoke_script(lamina.endpoint, "noop", WORK)
            url = f"{lamina.endpoint}/2015-03-31/functions/noop/invocations"
            print("warm under the profiler:", wrk(url, 1, args.seconds, script))
        spy.send_signal(signal.SIGINT)
        spy.wait()
    print(f"collapsed stacks: {out}")
    print(summarize(out, args.top))


if __name__ == "__main__":
    sys.exit(main())
