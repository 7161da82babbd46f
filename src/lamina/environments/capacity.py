"""How fast and how far environments may grow on this node.

Two limits, checked before a new environment starts (a warm one needs neither):

- **Memory budget**: the sum of MemorySize over live environments never exceeds the
  node's budget. When a start would pass it, idle environments (least recently used
  first, never provisioned ones) are stopped to make room; if that is not enough the
  invocation is throttled with 429 — a throttle the caller can retry, instead of the
  host running out of memory.
- **Memory actually free**: MemorySize is a ceiling (each sandbox's cgroup enforces
  it), not what an environment uses — an idle Python environment forked from a zygote
  keeps a few MB of its own — so the default budget counts MemorySize against several
  times the RAM (see `default_budget_mb`). What keeps the host from running out is this
  second check: a start also needs the kernel's MemAvailable to hold the new
  environment's whole MemorySize plus a reserve; when it does not, idle environments are
  stopped first (least recently used), else 429.
- **Scaling rate**, per function, as Lambda documents its scaling: a burst of new
  environments at once, then a steady rate (Lambda: 1,000 every 10 seconds).

When the node serves from several processes, each owning its environments, the budget
is the node's: given `SharedCounters`, each process publishes the MemorySize it has
committed and a start counts the others' too, checked and published under the node
lock. Only this process's own idle environments can be stopped to make room.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lamina.environments.environment import Environment
from lamina.environments.lifecycle import EnvState
from lamina.errors import TooManyRequests
from lamina.functions.model import FunctionConfig

if TYPE_CHECKING:
    from lamina.serving.shared import SharedCounters

# Sum of MemorySize admitted per MB of RAM by default. 8x lets a 24 GB machine hold
# 1,500 idle 128 MB environments (measured ~3-5 MB unique memory each); the
# MemAvailable check, not this ratio, is what guards the host.
OVERCOMMIT = 8
RESERVE_FRACTION = 0.05  # of RAM kept free beyond a new environment's MemorySize


def host_memory_mb() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)


def default_budget_mb() -> int:
    return host_memory_mb() * OVERCOMMIT


def mem_available_mb(meminfo: str = "/proc/meminfo") -> int | None:
    """The kernel's estimate of memory available without swapping; None if unknown."""
    try:
        with open(meminfo, "rb") as file:
            for line in file:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _committed_mb(envs: Iterable[Environment]) -> int:
    return sum(e.config.memory_mb for e in envs if e.alive)


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
        available_mb: Callable[[], int | None] = mem_available_mb,
        reserve_mb: int | None = None,
        shared: SharedCounters | None = None,
    ) -> None:
        self.memory_budget_mb = memory_budget_mb
        self._shared = shared
        self._burst = burst
        self._rate = rate_per_s
        self._clock = clock
        self._available_mb = available_mb
        self._reserve_mb = (
            int(host_memory_mb() * RESERVE_FRACTION) if reserve_mb is None else reserve_mb
        )
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, config: FunctionConfig, live: Iterable[Environment]) -> None:
        """Allow one new environment of `config`, freeing idle memory if needed, or raise 429.

        `live` is this process's environments, not yet including the new one."""
        shared = self._shared
        if shared is None:
            self._admit(config, live, 0)
            return
        # Starts are rare next to invocations, so always under the lock: the check and
        # the publish of the new total must not interleave with another process's.
        with shared.locked():
            envs = self._admit(config, live, shared.others_memory_mb())
            shared.publish_memory_mb(_committed_mb(envs) + config.memory_mb)

    def publish(self, live: Iterable[Environment]) -> None:
        """Publish what this process's environments commit, after some have stopped.

        Until it is called the published figure stays high, which only refuses more."""
        if self._shared is not None:
            self._shared.publish_memory_mb(_committed_mb(live))

    def _admit(
        self, config: FunctionConfig, live: Iterable[Environment], others_mb: int
    ) -> list[Environment]:
        envs = [e for e in live if e.alive]
        used = sum(e.config.memory_mb for e in envs) + others_mb
        over_budget = used + config.memory_mb - self.memory_budget_mb
        available = self._available_mb()
        short = 0 if available is None else config.memory_mb + self._reserve_mb - available
        needed = max(over_budget, short)
        if needed > 0:
            # Counted by MemorySize either way: for the RAM shortfall an overestimate of
            # what a stopped environment gives back, so the check runs again next start.
            idle = sorted(
                (e for e in envs if e.state is EnvState.IDLE and not e.provisioned),
                key=lambda e: e.idle_since,
            )
            freeable = 0
            victims = []
            for env in idle:
                if freeable >= needed:
                    break
                victims.append(env)
                freeable += env.config.memory_mb
            if freeable < needed:
                raise _throttled("ConcurrentInvocationLimitExceeded")
            for env in victims:
                env.stop()
        self._take_token(config.name)
        return envs

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
