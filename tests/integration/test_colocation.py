"""Low-load co-location end to end: invocations that run one at a time share the event
loop's CPU; a second invocation in flight spreads the loop and the environments again.
The function reports where it may run (its own sched_getaffinity); the server's loop
thread is its main thread, read from /proc."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import LaminaServer, create_function

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs",
)

WHERE = """
import os, time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return sorted(os.sched_getaffinity(0))
"""


def loop_cpus(server: LaminaServer) -> list[int]:
    assert server.process is not None
    pid = server.process.pid
    status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    (listed,) = [line.split(":", 1)[1].strip() for line in status.splitlines()
                 if line.startswith("Cpus_allowed_list:")]  # fmt: skip
    cpus: list[int] = []
    for part in listed.split(","):
        low, _, high = part.partition("-")
        cpus += range(int(low), int(high or low) + 1)
    return cpus


def where(client: Any, name: str, sleep: float = 0.0) -> list[int]:
    response = client.invoke(FunctionName=name, Payload=json.dumps({"sleep": sleep}))
    result: list[int] = json.loads(response["Payload"].read())
    return result


def test_calm_invocations_share_the_loop_cpu_and_a_second_in_flight_spreads(
    fresh_server: LaminaServer,
) -> None:
    everywhere = sorted(os.sched_getaffinity(0))
    client = fresh_server.start().client("lambda")
    name = create_function(client, WHERE)

    calm = [where(client, name) for _ in range(20)]
    assert calm[0] == everywhere  # not yet calm for long enough
    assert len(calm[-1]) == 1
    assert loop_cpus(fresh_server) == calm[-1]  # the loop thread is pinned there too

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(where, client, name, 1.0)
        time.sleep(0.3)  # the first is running: the second is dispatched with two in flight
        second = pool.submit(where, client, name, 0.0)
        assert second.result(timeout=30) == everywhere
        first.result(timeout=30)
    assert loop_cpus(fresh_server) == everywhere

    again = [where(client, name) for _ in range(20)]
    assert len(again[-1]) == 1


def test_co_location_can_be_turned_off(tmp_path: Path) -> None:
    server = LaminaServer(tmp_path / "data", extra_env={"LAMINA_COLOCATE": "0"}).start()
    try:
        client = server.client("lambda")
        name = create_function(client, WHERE)
        assert [where(client, name) for _ in range(20)][-1] == sorted(os.sched_getaffinity(0))
        assert loop_cpus(server) == sorted(os.sched_getaffinity(0))
    finally:
        server.stop()
