"""Capacity: the MemorySize budget, the MemAvailable guard, eviction order, scaling rate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from lamina.environments.capacity import Capacity, mem_available_mb
from lamina.environments.lifecycle import EnvState
from lamina.errors import TooManyRequests


@dataclass
class Config:
    name: str = "fn"
    memory_mb: int = 128


@dataclass
class Env:
    memory_mb: int
    idle_since: float
    state: EnvState = EnvState.IDLE
    provisioned: bool = False
    alive: bool = True
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        self.config = Config(memory_mb=self.memory_mb)

    def stop(self) -> None:
        self.alive = False


def capacity(budget: int, available: int | None, reserve: int = 100) -> Capacity:
    return Capacity(budget, 1000, 1.0, available_mb=lambda: available, reserve_mb=reserve)


def admit(cap: Capacity, envs: list[Env], memory_mb: int = 128) -> None:
    cap.admit(Config(memory_mb=memory_mb), envs)  # type: ignore[arg-type]


def test_budget_counts_memory_size_and_evicts_least_recently_idle() -> None:
    envs = [Env(256, idle_since=2.0), Env(256, idle_since=1.0), Env(256, 0.0, EnvState.BUSY)]
    admit(capacity(budget=800, available=10_000), envs, 128)
    assert [e.alive for e in envs] == [True, False, True]  # the older idle one made room


def test_low_mem_available_evicts_idle_environments_first() -> None:
    envs = [Env(128, idle_since=1.0), Env(128, idle_since=2.0)]
    # 200 MB free: a 128 MB start plus a 100 MB reserve is 28 MB short
    admit(capacity(budget=100_000, available=200), envs, 128)
    assert [e.alive for e in envs] == [False, True]


def test_low_mem_available_with_nothing_idle_throttles() -> None:
    envs: list[Any] = [Env(128, 0.0, EnvState.BUSY), Env(128, 0.0, provisioned=True)]
    with pytest.raises(TooManyRequests) as raised:
        admit(capacity(budget=100_000, available=150), envs, 128)
    assert raised.value.fields["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert all(e.alive for e in envs)


def test_unknown_mem_available_leaves_only_the_budget() -> None:
    admit(capacity(budget=1_000, available=None), [], 512)


def test_overcommitted_budget_admits_more_than_ram_while_memory_is_free() -> None:
    envs = [Env(128, idle_since=float(i)) for i in range(1000)]  # 125 GB of MemorySize
    admit(capacity(budget=24_000 * 8, available=20_000), envs, 128)
    assert all(e.alive for e in envs)


def test_mem_available_reads_meminfo(tmp_path: Any) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   2048000 kB\n")
    assert mem_available_mb(str(meminfo)) == 2000
    assert mem_available_mb(str(tmp_path / "missing")) is None
    assert (mem_available_mb() or 0) > 0  # this machine's
