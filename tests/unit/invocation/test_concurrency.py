"""Concurrency: reserved caps, the shared unreserved pool, and the 100-unreserved rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lamina.errors import InvalidParameterValue, TooManyRequests
from lamina.invocation.concurrency import UNRESERVED_MIN, Concurrency
from lamina.serving.shared import SharedCounters


def throttle_reason(caught: pytest.ExceptionInfo[TooManyRequests]) -> object:
    return caught.value.fields["Reason"]


def test_unreserved_functions_share_the_account_pool() -> None:
    pool = Concurrency(3)
    assert pool.acquire("a") is True  # counted in the shared pool
    assert pool.acquire("b") is True
    assert pool.acquire("a") is True
    with pytest.raises(TooManyRequests) as caught:
        pool.acquire("c")
    assert throttle_reason(caught) == "ConcurrentInvocationLimitExceeded"
    assert caught.value.fields["Type"] == "User"
    assert caught.value.status == 429
    assert caught.value.message == "Rate Exceeded."
    assert (pool.running("a"), pool.running("b"), pool.running("c")) == (2, 1, 0)


def test_release_frees_a_slot_in_the_pool() -> None:
    pool = Concurrency(1)
    unreserved = pool.acquire("a")
    with pytest.raises(TooManyRequests):
        pool.acquire("b")
    pool.release("a", unreserved)
    assert pool.running("a") == 0
    assert pool.acquire("b") is True


def test_reserved_function_is_capped_at_its_reservation() -> None:
    pool = Concurrency(1000)
    pool.reserve("r", 2)
    assert pool.reserved("r") == 2
    assert pool.acquire("r") is False  # not from the shared pool
    assert pool.acquire("r") is False
    with pytest.raises(TooManyRequests) as caught:
        pool.acquire("r")
    assert throttle_reason(caught) == "ReservedFunctionConcurrentInvocationLimitExceeded"
    pool.release("r", False)
    assert pool.acquire("r") is False


def test_a_reservation_comes_out_of_the_shared_pool() -> None:
    pool = Concurrency(UNRESERVED_MIN + 5)
    pool.reserve("r", 5)
    assert pool.unreserved_limit == UNRESERVED_MIN
    for _ in range(UNRESERVED_MIN):
        pool.acquire("other")
    with pytest.raises(TooManyRequests):
        pool.acquire("other")
    # The reserved function still has its own five, whatever the pool does.
    for _ in range(5):
        assert pool.acquire("r") is False


def test_reserved_functions_do_not_use_the_shared_pool() -> None:
    pool = Concurrency(UNRESERVED_MIN + 1)
    pool.reserve("r", 1)
    pool.acquire("r")
    for i in range(UNRESERVED_MIN):
        pool.acquire(f"f{i}")
    pool.release("r", False)
    with pytest.raises(TooManyRequests):
        pool.acquire("another")


def test_zero_reservation_throttles_every_invocation() -> None:
    pool = Concurrency(1000)
    pool.reserve("off", 0)
    with pytest.raises(TooManyRequests) as caught:
        pool.acquire("off")
    assert throttle_reason(caught) == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_at_least_100_stay_unreserved() -> None:
    pool = Concurrency(1000)
    pool.reserve("a", 900)  # leaves exactly 100
    with pytest.raises(InvalidParameterValue, match=r"below its minimum value of \[100\]"):
        pool.reserve("b", 1)
    assert pool.reserved("b") is None
    pool.reserve("a", 899)  # changing one's own reservation does not count it twice
    pool.reserve("b", 1)
    with pytest.raises(InvalidParameterValue):
        pool.reserve("a", 900)
    assert pool.reserved("a") == 899  # a refused reservation changes nothing


def test_small_account_cannot_reserve_anything() -> None:
    pool = Concurrency(UNRESERVED_MIN)
    with pytest.raises(InvalidParameterValue):
        pool.reserve("a", 1)
    pool.reserve("a", 0)


def test_unreserve_returns_the_function_to_the_shared_pool() -> None:
    pool = Concurrency(1000)
    pool.reserve("r", 10)
    assert pool.unreserved_limit == 990
    pool.unreserve("r")
    pool.unreserve("r")  # twice is fine
    assert pool.reserved("r") is None
    assert pool.unreserved_limit == 1000
    assert pool.acquire("r") is True


def test_release_uses_the_flag_from_acquire_when_the_reservation_changed() -> None:
    pool = Concurrency(UNRESERVED_MIN + 1)
    started_shared = pool.acquire("f")  # counted in the shared pool...
    pool.reserve("f", 1)  # ...then the function gets a reservation while it runs
    for i in range(UNRESERVED_MIN - 1):
        pool.acquire(f"other{i}")
    with pytest.raises(TooManyRequests):
        pool.acquire("one-too-many")  # 1 (f, still shared) + 99 = the 100 left
    pool.release("f", started_shared)  # gives the shared slot back
    assert pool.acquire("one-too-many") is True


def test_release_of_a_reserved_run_does_not_touch_the_pool() -> None:
    pool = Concurrency(UNRESERVED_MIN + 1)
    pool.acquire("shared")
    pool.reserve("r", 1)
    pool.acquire("r")
    for i in range(UNRESERVED_MIN - 1):
        pool.acquire(f"other{i}")
    pool.release("r", False)
    with pytest.raises(TooManyRequests):
        pool.acquire("still-full")


def test_release_never_goes_negative() -> None:
    pool = Concurrency(2)
    pool.release("ghost", True)
    pool.release("ghost", False)
    assert pool.running("ghost") == 0
    assert pool.acquire("a") and pool.acquire("b")
    with pytest.raises(TooManyRequests):
        pool.acquire("c")


# --- across serving processes (SharedCounters) ---


def shared_pools(tmp_path: Path, limit: int) -> tuple[Concurrency, Concurrency, SharedCounters]:
    """Two serving processes' pools over one file (both in this process, each its slot)."""
    primary = SharedCounters.create(tmp_path / "counters", 2)
    worker = SharedCounters.attach(tmp_path / "counters", 1)
    return Concurrency(limit, primary), Concurrency(limit, worker), primary


def test_shared_pool_refuses_at_the_account_total(tmp_path: Path) -> None:
    first, second, counters = shared_pools(tmp_path, 3)
    assert first.acquire("a") is True
    assert first.acquire("a") is True
    assert second.acquire("b") is True
    with pytest.raises(TooManyRequests) as caught:
        second.acquire("b")
    with pytest.raises(TooManyRequests) as caught_first:
        first.acquire("c")
    for refused in (caught, caught_first):
        assert refused.value.status == 429
        assert refused.value.message == "Rate Exceeded."
        assert refused.value.fields == {
            "Reason": "ConcurrentInvocationLimitExceeded",
            "Type": "User",
        }
    # A refusal leaves nothing published behind it.
    assert counters.others_in_flight() == 1
    assert (first.in_flight, second.in_flight) == (2, 1)


def test_shared_pool_release_frees_a_slot_for_the_other_process(tmp_path: Path) -> None:
    first, second, counters = shared_pools(tmp_path, 2)
    unreserved = first.acquire("a")
    second.acquire("b")
    with pytest.raises(TooManyRequests):
        second.acquire("b")
    first.release("a", unreserved)
    assert second.acquire("b") is True
    assert counters.others_in_flight() == 2
    assert first.in_flight == 0


def test_the_node_count_adds_the_other_processes_invocations(tmp_path: Path) -> None:
    """What co-location reads: two processes each running one are two in flight."""
    first, second, _ = shared_pools(tmp_path, 10)
    assert Concurrency(10).node_in_flight == 0  # one process: its own count
    first.acquire("a")
    assert (first.in_flight, first.node_in_flight) == (1, 1)
    second.acquire("b")
    assert (first.node_in_flight, second.node_in_flight) == (2, 2)
    second.release("b", True)
    assert first.node_in_flight == 1


def test_shared_pool_leaves_reserved_functions_alone(tmp_path: Path) -> None:
    first, second, counters = shared_pools(tmp_path, UNRESERVED_MIN + 2)
    for pool in (first, second):  # every process knows the reservations
        pool.reserve("r", 2)
    for i in range(UNRESERVED_MIN):
        (first if i % 2 else second).acquire(f"f{i}")
    with pytest.raises(TooManyRequests):
        first.acquire("one-too-many")
    assert first.acquire("r") is False  # its own two, whatever the pool does
    assert first.acquire("r") is False
    with pytest.raises(TooManyRequests) as caught:
        first.acquire("r")
    assert throttle_reason(caught) == "ReservedFunctionConcurrentInvocationLimitExceeded"
    first.release("r", False)
    assert counters.others_in_flight() == UNRESERVED_MIN // 2  # reserved runs unpublished
    assert first.in_flight == UNRESERVED_MIN // 2 + 1


def test_a_contender_waiting_for_the_lock_does_not_make_the_last_slot_refused(
    tmp_path: Path,
) -> None:
    first, second, _ = shared_pools(tmp_path, 2)
    first.acquire("a")
    # The other process has published its attempt at the last slot and waits for the
    # lock, as it would on seeing this one's attempt (a second view of its slot stands
    # in for it). This process is refused...
    contender = SharedCounters.attach(tmp_path / "counters", 1)
    contender.publish_in_flight(1)
    with pytest.raises(TooManyRequests):
        first.acquire("a")
    contender.publish_in_flight(0)
    contender.close()
    # ...and withdrew its own attempt as it refused, so the contender finds the slot free.
    assert second.acquire("b") is True


HAMMER = """
import random, sys, time
from pathlib import Path
from lamina.errors import TooManyRequests
from lamina.invocation.concurrency import Concurrency
from lamina.serving.shared import SharedCounters

path, audit_path, slot, limit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pool = Concurrency(limit, SharedCounters.attach(path, slot))
# What this process holds, published after admission and withdrawn before release: the
# sum over processes never exceeds what was really admitted. Published and summed under
# the audit file's lock: a sum read while another process changes its count could add
# one process's count from before a release to another's from after an admission.
audit = SharedCounters.attach(audit_path, slot)
rng = random.Random(slot)
held = admitted = refused = most = 0
deadline = time.monotonic() + 1.5
while time.monotonic() < deadline:
    if held and rng.random() < 0.45:
        held -= 1
        with audit.locked():
            audit.publish_in_flight(held)
        pool.release("f", True)
        continue
    try:
        pool.acquire("f")
    except TooManyRequests:
        refused += 1
        continue
    held += 1
    admitted += 1
    with audit.locked():
        audit.publish_in_flight(held)
        most = max(most, held + audit.others_in_flight())
print(most, admitted, refused)
"""


def test_processes_hammering_one_small_limit_never_exceed_it(tmp_path: Path) -> None:
    limit, workers = 4, 3
    counters = SharedCounters.create(tmp_path / "counters", workers + 1)
    audit = SharedCounters.create(tmp_path / "audit", workers + 1)
    argv = [str(tmp_path / "counters"), str(tmp_path / "audit")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HAMMER, *argv, str(slot), str(limit)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for slot in range(1, workers + 1)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        results.append([int(n) for n in out.split()])
    most = max(r[0] for r in results)
    assert 1 <= most <= limit
    assert sum(r[1] for r in results) > 0 and sum(r[2] for r in results) > 0
    counters.close()
    audit.close()
