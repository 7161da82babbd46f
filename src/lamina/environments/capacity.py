"""How fast and how far environments may grow on this node.

Two limits, checked before a new environment starts (a warm one needs neither):

- **Memory budget**: the sum of MemorySize over live environments never exceeds the
  node's budget. When a start would pass it, idle environments (least recently used
  first, never provisioned ones) are stopped to make room; if that is not enough the
  invocation is throttled with 429 — a throttle the caller can retry, instead of the
  host running out of memory.
- **Scaling rate**, per function, as Lambda documents its scaling: a burst of new
  environments at once, then a steady rate (Lambda: 1,000 every 10 seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lamina.environments.environment import Environment
from lamina.environments.lifecycle import EnvState
from lamina.errors import TooManyRequests
from lamina.functions.model import FunctionConfig


def _throttled(reason: str) -> TooManyRequests:
    return TooManyRequests("Rate Exceeded.", fields={"Reason": reason, "Type": "User"})


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class Capacity:
    def __init__(
        self,
        memory_budget_mb: int,
        burst: int,
        rate_per_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.memory_budget_mb = memory_budget_mb
        self._burst = burst
        self._rate = rate_per_s
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, config: FunctionConfig, live: Iterable[Environment]) -> None:
        """Allow one new environment of `config`, freeing idle memory if needed, or raise 429."""
        envs = [e for e in live if e.alive]
        used = sum(e.config.memory_mb for e in envs)
        excess = used + config.memory_mb - self.memory_budget_mb
        if excess > 0:
            idle = sorted(
                (e for e in envs if e.state is EnvState.IDLE and not e.provisioned),
                key=lambda e: e.idle_since,
            )
            freeable = 0
            victims = []
            for env in idle:
                if freeable >= excess:
                    break
                victims.append(env)
                freeable += env.config.memory_mb
            if freeable < excess:
                raise _throttled("ConcurrentInvocationLimitExceeded")
            for env in victims:
                env.stop()
        self._take_token(config.name)

    def _take_token(self, function: str) -> None:
        now = self._clock()
        bucket = self._buckets.get(function)
        if bucket is None:
            bucket = self._buckets[function] = _Bucket(float(self._burst), now)
        bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            raise _throttled("FunctionScalingLimitExceeded")
        bucket.tokens -= 1.0
