"""This checkout's lamina against another revision's, warm invokes, in one run.

    python bench/ab.py --base 6fce3c7 [--connections 32] [--rounds 6] [--seconds 3]

The base revision is checked out (`git worktree`) into bench/.work/ab-<rev> and served
from this venv with its own src/ first on PYTHONPATH; both servers run side by side.
wrk (one SigV4-signed Invoke replayed, as bench/invoke.py does) alternates between
them in short rounds, in turn order flipped each round, so the machine's drift (it is
shared, and its speed moves by a third within minutes) lands on both alike. Medians
per server: invokes/s, the server process's CPU per invoke and its environments'.

Prints the table and rewrites the `ab` section of bench/RESULTS-ab.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
from pathlib import Path

from benchlib import HERE, WORK, Lamina, Results, descendants, make_zip
from invoke import signed_invoke_script, wrk

HANDLER = "def handler(event, context):\n    return {}\n"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    return 0.0


def serving_processes(pid: int) -> list[int]:
    """The primary and its workers (LAMINA_WORKERS): every process that serves the API."""
    found = [pid]
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            if b"lamina.serving.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


def base_tree(rev: str) -> Path:
    tree = WORK / f"ab-{rev}"
    if not (tree / "src" / "lamina").is_dir():
        subprocess.run(
            ["git", "worktree", "add", "--force", "--detach", str(tree), rev],
            cwd=HERE.parent, check=True, capture_output=True,
        )  # fmt: skip
    return tree


class Side:
    def __init__(self, name: str, lamina: Lamina) -> None:
        self.name = name
        self.lamina = lamina
        self.rounds: list[dict[str, float]] = []

    def prepare(self) -> None:
        client = self.lamina.client
        client.create_function(
            FunctionName="noop", Runtime="python3.11", Role=self.lamina.role,
            Handler="app.handler", Code={"ZipFile": make_zip({"app.py": HANDLER})},
            MemorySize=1769,
        )  # fmt: skip
        client.get_waiter("function_active_v2").wait(FunctionName="noop")
        client.invoke(FunctionName="noop", Payload=b"{}")
        work = WORK / f"ab-script-{self.name}"
        work.mkdir(parents=True, exist_ok=True)
        self.script = signed_invoke_script(self.lamina.endpoint, "noop", work)
        self.url = f"{self.lamina.endpoint}/2015-03-31/functions/noop/invocations"

    def round(self, connections: int, seconds: float) -> None:
        pid = self.lamina.pid
        servers = serving_processes(pid)
        server0 = sum(cpu_seconds(p) for p in servers)
        envs0 = sum(cpu_seconds(p) for p in descendants(pid)) - server0 + cpu_seconds(pid)
        out = wrk(self.url, connections, seconds, self.script)
        server1 = sum(cpu_seconds(p) for p in servers)
        envs1 = sum(cpu_seconds(p) for p in descendants(pid)) - server1 + cpu_seconds(pid)
        count = max(out["rps"] * seconds, 1.0)
        self.rounds.append({
            "rps": out["rps"], "p50_ms": out["p50_ms"], "errors": out["errors"],
            "server_us": (server1 - server0) / count * 1e6,
            "envs_us": (envs1 - envs0) / count * 1e6,
        })  # fmt: skip

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for this checkout's server only (e.g. LAMINA_WORKERS=2)",
    )  # fmt: skip
    parser.add_argument(
        "--base-env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for the base revision's server only",
    )  # fmt: skip
    args = parser.parse_args()
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.base], cwd=HERE.parent, check=True,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    base_src = base_tree(rev) / "src"
    with contextlib.ExitStack() as stack:
        this_env = dict(pair.split("=", 1) for pair in args.env)
        this = Side("this", stack.enter_context(Lamina(this_env)))
        base_env = {"PYTHONPATH": str(base_src), **dict(p.split("=", 1) for p in args.base_env)}
        base = Side(rev, stack.enter_context(Lamina(base_env)))
        for side in (this, base):
            side.prepare()
            wrk(side.url, args.connections, 2, side.script)  # warm-up
        for n in range(args.rounds):
            for side in (this, base) if n % 2 == 0 else (base, this):
                side.round(args.connections, args.seconds)
                print(f"round {n + 1} {side.name}: {side.rounds[-1]['rps']:.0f}/s", flush=True)
    markdown = render(this, base, args)
    print(markdown)
    Results(HERE / "RESULTS-ab.md", "lamina against an earlier lamina", ["ab"]).put(
        "ab", markdown, {"this": this.rounds, "base": base.rounds, "base_rev": rev}
    )


def render(this: Side, base: Side, args: argparse.Namespace) -> str:
    rows = [
        "| | invokes/s | p50 ms | serving processes' CPU µs/invoke | environments' CPU µs/invoke | errors |",
        "|---|---|---|---|---|---|",
    ]
    for side, label in ((this, "this checkout"), (base, f"base {base.name}")):
        rows.append(
            f"| {label} | {side.median('rps'):.0f} | {side.median('p50_ms'):.2f} | "
            f"{side.median('server_us'):.0f} | {side.median('envs_us'):.0f} | "
            f"{sum(r['errors'] for r in side.rounds):.0f} |"
        )
    ratio = this.median("rps") / base.median("rps")
    cpu = this.median("server_us") / base.median("server_us")
    return "\n".join(
        [
            f"## Warm invoke, this checkout against {base.name} (`ab.py`)",
            "",
            f"wrk at {args.connections} connections, {args.rounds} rounds of {args.seconds:g} s "
            "per server, alternating; medians. Handler `return {}`, 1769 MB."
            + (f" This checkout with {', '.join(args.env)}." if args.env else "")
            + (f" The base with {', '.join(args.base_env)}." if args.base_env else ""),
            "",
            *rows,
            "",
            f"This checkout ÷ base: **{ratio:.2f}x** invokes/s, {cpu:.2f}x the serving processes' CPU per invoke.",
        ]
    )


if __name__ == "__main__":
    main()
