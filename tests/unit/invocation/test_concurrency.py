"""Concurrency: reserved caps, the shared unreserved pool, and the 100-unreserved rule."""

from __future__ import annotations

import pytest

from lamina.errors import InvalidParameterValue, TooManyRequests
from lamina.invocation.concurrency import UNRESERVED_MIN, Concurrency


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
