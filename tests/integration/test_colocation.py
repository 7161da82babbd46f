"""Low-load co-location end to end: while invocations run one at a time the event loop's
thread and the runtime waiting for its next event share one CPU; a second invocation in
flight spreads them again. Handlers always run on every CPU. The server's loop thread is
its main thread, read from /proc; the runtime's mask is read by a thread the handler
starts, while the runtime waits."""

from __future__ import annotations

import contextlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.cpus import can_pin
from tests.integration.support import LaminaServer, create_function

pytestmark = pytest.mark.skipif(not can_pin(), reason="needs two CPUs and leave to pin")

WHERE = """
import os, threading, time

MAIN = threading.get_native_id()  # imported (init) on the runtime's thread
SEEN = []

def look():
    time.sleep(0.05)  # the handler has returned: the runtime is waiting
    SEEN.append(sorted(os.sched_getaffinity(MAIN)))

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    waited = SEEN[-1] if SEEN else None
    threading.Thread(target=look).start()
    return {"waited": waited, "runs": sorted(os.sched_getaffinity(0))}
"""


def thread_cpus(server: LaminaServer) -> dict[int, list[int]]:
    """Each thread of the server process: where it may run."""
    assert server.process is not None
    found: dict[int, list[int]] = {}
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found[int(task.name)] = sorted(os.sched_getaffinity(int(task.name)))
    return found


def where(client: Any, name: str, sleep: float = 0.0) -> dict[str, Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps({"sleep": sleep}))
    result: dict[str, Any] = json.loads(response["Payload"].read())
    return result


def calm_calls(client: Any, name: str, count: int) -> list[dict[str, Any]]:
    results = []
    for _ in range(count):
        results.append(where(client, name))
        time.sleep(0.1)  # the handler's thread looks while the runtime waits
    return results


def test_calm_invocations_share_the_loop_cpu_and_a_second_in_flight_spreads(
    fresh_server: LaminaServer,
) -> None:
    everywhere = sorted(os.sched_getaffinity(0))
    # One serving process: the test watches its loop thread, and both calls must reach it
    # (with workers each process pins and spreads its own, by the node's count).
    fresh_server.extra_env = {"LAMINA_WORKERS": "1"}
    client = fresh_server.start().client("lambda")
    assert fresh_server.process is not None
    loop_thread = fresh_server.process.pid
    name = create_function(client, WHERE)

    calm = calm_calls(client, name, 20)
    assert calm[1]["waited"] == everywhere  # not calm for long enough yet
    loop = thread_cpus(fresh_server)[loop_thread]
    assert len(loop) == 1  # the loop thread is pinned to one CPU ...
    assert calm[-1]["waited"] == loop  # ... and the runtime waits for its events there
    assert all(c["runs"] == everywhere for c in calm)  # while handlers run anywhere

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(where, client, name, 1.0)
        time.sleep(0.3)  # the first is running: the second is dispatched with two in flight
        second = pool.submit(where, client, name, 0.0)
        assert second.result(timeout=30)["runs"] == everywhere
        first.result(timeout=30)
    # Spread: the loop thread, and every thread it started while pinned, may use any CPU.
    assert {tuple(cpus) for cpus in thread_cpus(fresh_server).values()} == {tuple(everywhere)}

    again = calm_calls(client, name, 20)
    assert len(again[-1]["waited"]) == 1


def test_co_location_can_be_turned_off(tmp_path: Path) -> None:
    server = LaminaServer(tmp_path / "data", extra_env={"LAMINA_COLOCATE": "0"}).start()
    try:
        client = server.client("lambda")
        name = create_function(client, WHERE)
        everywhere = sorted(os.sched_getaffinity(0))
        assert calm_calls(client, name, 20)[-1]["waited"] == everywhere
        assert server.process is not None
        assert thread_cpus(server)[server.process.pid] == everywhere
    finally:
        server.stop()
