"""The sandbox's cost: new-environment first invoke and warm invoke, sandbox on vs off,
in the same run on the same machine.

    python bench/sandbox.py [--samples 30] [--warm 300]

Two lamina servers (LAMINA_SANDBOX=1 and =0) run side by side; samples alternate
between them so that machine noise falls on both alike. A *new* environment per
cold sample: LAMINA_IDLE_ENVIRONMENT_S=0.25 lets the reaper stop the previous one,
and the bench waits for that before the next sample. Figures: the client's round
trip (boto3 invoke, milliseconds) and lamina's own Init Duration (REPORT line: from
spawn to the runtime's first /next).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.support import LaminaServer, create_function

# The log stream names the environment (every sandboxed function is pid 2).
NOOP = "import os\n\ndef handler(event, context):\n    return os.environ['AWS_LAMBDA_LOG_STREAM_NAME']\n"


def _invoke(client: Any, name: str) -> tuple[float, float | None, str]:
    started = time.perf_counter()
    response = client.invoke(FunctionName=name, LogType="Tail")
    elapsed = (time.perf_counter() - started) * 1000
    environment = json.loads(response["Payload"].read())
    tail = base64.b64decode(response["LogResult"]).decode()
    init = None
    if "Init Duration: " in tail:
        init = float(tail.split("Init Duration: ")[1].split(" ms")[0])
    return elapsed, init, str(environment)


def _stats(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"p50 {statistics.median(values):7.2f}  p99 {p99:7.2f}  n={len(values)}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--warm", type=int, default=300)
    # The CPU share follows MemorySize (1,769 MB is one full CPU's share, as on Lambda).
    parser.add_argument("--memory", type=int, default=128)
    args = parser.parse_args()
    root = Path(mkdtemp(prefix="lamina-bench-sandbox-"))
    env = {"LAMINA_IDLE_ENVIRONMENT_S": "0.25"}
    servers = {
        "on": LaminaServer(root / "on", extra_env={**env, "LAMINA_SANDBOX": "1"}).start(),
        "off": LaminaServer(root / "off", extra_env={**env, "LAMINA_SANDBOX": "0"}).start(),
    }
    try:
        clients = {k: s.client("lambda") for k, s in servers.items()}
        names = {k: create_function(c, NOOP, Timeout=30, MemorySize=args.memory) for k, c in clients.items()}
        for k in servers:  # let the zygotes come up
            _invoke(clients[k], names[k])
        cold: dict[str, list[float]] = {k: [] for k in servers}
        init: dict[str, list[float]] = {k: [] for k in servers}
        seen: dict[str, set[str]] = {k: set() for k in servers}
        for _ in range(args.samples):
            time.sleep(0.8)  # the reaper stops the last environment of both servers
            for k in servers:
                elapsed, init_ms, environment = _invoke(clients[k], names[k])
                if init_ms is None or environment in seen[k]:
                    continue  # not a new environment: not a cold sample
                seen[k].add(environment)
                cold[k].append(elapsed)
                init[k].append(init_ms)
        warm: dict[str, list[float]] = {k: [] for k in servers}
        for _ in range(args.warm):
            for k in servers:
                warm[k].append(_invoke(clients[k], names[k])[0])
        for k in servers:
            print(f"sandbox {k:3}  cold round trip  {_stats(cold[k])}")
            print(f"sandbox {k:3}  cold Init Dur.   {_stats(init[k])}")
            print(f"sandbox {k:3}  warm round trip  {_stats(warm[k])}")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
