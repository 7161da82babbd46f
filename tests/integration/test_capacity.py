"""The node's memory budget and per-function scaling rate: excess gets 429, never an
out-of-memory host; idle environments make room for new ones."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from tests.integration.support import LaminaServer, create_function

SLEEPER = "import os, time\ndef handler(e, c):\n    time.sleep(e.get('sleep', 0))\n    return os.environ['AWS_LAMBDA_LOG_STREAM_NAME']\n"


def _call(client: Any, name: str, sleep: float = 0) -> tuple[str, Any]:
    try:
        response = client.invoke(FunctionName=name, Payload=json.dumps({"sleep": sleep}))
    except ClientError as err:
        return "throttled", err.response
    return "ok", json.loads(response["Payload"].read())


def test_memory_budget_evicts_idle_then_throttles(fresh_server: LaminaServer) -> None:
    fresh_server.extra_env = {"LAMINA_MEMORY_BUDGET_MB": "512"}
    fresh_server.start()
    client = fresh_server.client()
    first = create_function(client, SLEEPER, MemorySize=256, Timeout=30)
    second = create_function(client, SLEEPER, MemorySize=256, Timeout=30)
    with ThreadPoolExecutor(2) as pool:  # two environments of `first`: the whole budget
        assert all(r[0] == "ok" for r in pool.map(lambda _: _call(client, first, 0.5), range(2)))
    # `first`'s environments are idle now: `second` gets room by stopping one of them
    assert _call(client, second)[0] == "ok"

    started = threading.Barrier(3)
    results: list[tuple[str, Any]] = []

    def busy(name: str) -> None:
        started.wait()
        results.append(_call(client, name, 2.0))

    threads = [threading.Thread(target=busy, args=(n,)) for n in (first, second)]
    for thread in threads:
        thread.start()
    started.wait()
    throttled = None
    for _ in range(100):  # once both hold their 256 MB, a third environment cannot fit
        outcome = _call(client, create_function(client, SLEEPER, MemorySize=256))
        if outcome[0] == "throttled":
            throttled = outcome[1]
            break
    for thread in threads:
        thread.join()
    assert throttled is not None
    assert throttled["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert throttled["Error"]["Code"] == "TooManyRequestsException"
    assert all(r[0] == "ok" for r in results)


def test_scaling_rate_limits_new_environments(fresh_server: LaminaServer) -> None:
    fresh_server.extra_env = {"LAMINA_SCALE_BURST": "2", "LAMINA_SCALE_RATE_PER_S": "0.01"}
    fresh_server.start()
    client = fresh_server.client()
    name = create_function(client, SLEEPER, Timeout=30)
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: _call(client, name, 1.0), range(4)))
    ok = [o for o in outcomes if o[0] == "ok"]
    throttled = [o[1] for o in outcomes if o[0] == "throttled"]
    assert len(ok) == 2 and len(throttled) == 2
    assert {t["Reason"] for t in throttled} == {"FunctionScalingLimitExceeded"}
    # warm environments need no new capacity: both keep serving
    assert {_call(client, name)[0] for _ in range(5)} == {"ok"}


def test_a_start_needs_memory_actually_free(fresh_server: LaminaServer) -> None:
    """Beyond the MemorySize budget, a new environment needs MemAvailable to hold it: a
    reserve larger than the machine's memory throttles every start, and nothing runs."""
    fresh_server.extra_env = {"LAMINA_MEMORY_RESERVE_MB": str(64 * 1024 * 1024)}
    fresh_server.start()
    client = fresh_server.client()
    outcome = _call(client, create_function(client, SLEEPER))
    assert outcome[0] == "throttled"
    assert outcome[1]["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert outcome[1]["Reason"] == "ConcurrentInvocationLimitExceeded"
