"""What a second serving process could buy: one lamina at N connections against two
independent lamina servers at N/2 connections each, at the same time, in one run.

    python bench/split.py [--connections 32] [--rounds 4] [--seconds 4]

One lamina's event-loop thread saturates on warm invokes while the machine's other
core still idles (bench/README.md, "The warm path, session 3"). Two servers on their
own data dirs share nothing, so their sum is an upper bound on what serving from
two processes could reach here, before the cost of keeping two in step. Rounds
alternate one-then-two; medians. Rewrites the `split` section of bench/RESULTS-split.md.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import threading
from pathlib import Path
from typing import Any

from benchlib import HERE, WORK, Lamina, Results, make_zip
from invoke import signed_invoke_script, wrk

HANDLER = "def handler(event, context):\n    return {}\n"


def prepare(lamina: Lamina, tag: str) -> tuple[str, Path]:
    lamina.client.create_function(
        FunctionName="noop", Runtime="python3.11", Role=lamina.role, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HANDLER})}, MemorySize=1769,
    )  # fmt: skip
    lamina.client.get_waiter("function_active_v2").wait(FunctionName="noop")
    lamina.client.invoke(FunctionName="noop", Payload=b"{}")
    work = WORK / f"split-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    url = f"{lamina.endpoint}/2015-03-31/functions/noop/invocations"
    return url, signed_invoke_script(lamina.endpoint, "noop", work)


def together(targets: list[tuple[str, Path]], connections: int, seconds: float) -> float:
    """Invokes/s summed over `targets`, all driven at once."""
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda t=t: results.append(wrk(t[0], connections, seconds, t[1])))
        for t in targets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(r["rps"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    n = args.connections
    one: list[float] = []
    two: list[float] = []
    with contextlib.ExitStack() as stack:
        first = prepare(stack.enter_context(Lamina()), "a")
        second = prepare(stack.enter_context(Lamina()), "b")
        together([first, second], n // 2, 2)  # warm-up
        for round_ in range(args.rounds):
            one.append(together([first], n, args.seconds))
            two.append(together([first, second], n // 2, args.seconds))
            print(f"round {round_ + 1}: one {one[-1]:.0f}/s, two {two[-1]:.0f}/s", flush=True)
    ratio = statistics.median(two) / statistics.median(one)
    markdown = "\n".join(
        [
            "## One serving process against two (`split.py`)",
            "",
            f"wrk, {args.rounds} rounds of {args.seconds:g} s, alternating; medians. Handler "
            "`return {}`, 1769 MB; two servers share nothing (own data dirs, zygotes, logs).",
            "",
            "| | connections | invokes/s |",
            "|---|---|---|",
            f"| one lamina | {n} | {statistics.median(one):.0f} |",
            f"| two laminas, summed | {n // 2} each | {statistics.median(two):.0f} |",
            "",
            f"Two ÷ one: **{ratio:.2f}x** — an upper bound for serving from two processes here.",
        ]
    )
    print(markdown)
    Results(HERE / "RESULTS-split.md", "lamina, one serving process against two", ["split"]).put(
        "split", markdown, {"one": one, "two": two}
    )


if __name__ == "__main__":
    main()
