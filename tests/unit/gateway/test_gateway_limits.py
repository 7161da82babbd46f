from __future__ import annotations

import pytest

from lamina.gateway.errors import RateLimited
from lamina.gateway.limits import Limiter, Limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rpm_window_slides() -> None:
    clock = Clock()
    limiter = Limiter(clock)
    scope = [("key", "key", Limits(rpm=2))]
    limiter.admit(scope, 1).release()
    clock.now += 30
    limiter.admit(scope, 1).release()
    with pytest.raises(RateLimited) as limited:
        limiter.admit(scope, 1)
    assert limited.value.retry_after_s == pytest.approx(30)
    assert limited.value.headers["retry-after"] == "30"
    clock.now += 30
    limiter.admit(scope, 1)


def test_tpm_is_corrected_by_real_usage() -> None:
    clock = Clock()
    limiter = Limiter(clock)
    scope = [("key", "key", Limits(tpm=100))]
    ticket = limiter.admit(scope, 10)
    ticket.settle(95)
    ticket.release()
    with pytest.raises(RateLimited):
        limiter.admit(scope, 10)
    clock.now += 60
    limiter.admit(scope, 10)


def test_parallel_and_all_or_nothing() -> None:
    limiter = Limiter(Clock())
    key, model = ("key", "key", Limits(max_parallel=1)), ("model", "model", Limits(rpm=1))
    first = limiter.admit([key], 1)
    with pytest.raises(RateLimited):
        limiter.admit([model, key], 1)
    first.release()
    first.release()  # idempotent
    limiter.admit([model, key], 1)  # the refused request left no trace in `model`
