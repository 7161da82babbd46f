"""Capacity: the MemorySize budget, the MemAvailable guard, eviction order, scaling rate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lamina.environments.capacity import Capacity, mem_available_mb
from lamina.environments.lifecycle import EnvState
from lamina.errors import TooManyRequests
from lamina.serving.shared import SharedCounters


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


# --- across serving processes (SharedCounters) ---


def shared_capacities(tmp_path: Path, budget: int) -> tuple[Capacity, Capacity, SharedCounters]:
    """Two serving processes' capacities over one file (both here, each its own slot)."""
    primary = SharedCounters.create(tmp_path / "counters", 2)
    worker = SharedCounters.attach(tmp_path / "counters", 1)

    def make(shared: SharedCounters) -> Capacity:
        return Capacity(budget, 1000, 1.0, available_mb=lambda: None, reserve_mb=100, shared=shared)

    return make(primary), make(worker), primary


def test_other_processes_memory_counts_toward_the_budget(tmp_path: Path) -> None:
    first, second, counters = shared_capacities(tmp_path, budget=1024)
    admit(second, [], 512)
    assert counters.others_memory_mb() == 512  # the new environment, not yet live
    admit(first, [Env(256, 0.0, EnvState.BUSY)], 256)  # 512 + 256 + 256: just fits
    with pytest.raises(TooManyRequests) as raised:
        admit(first, [Env(256, 0.0, EnvState.BUSY), Env(256, 0.0, EnvState.BUSY)], 128)
    assert raised.value.status == 429
    assert raised.value.message == "Rate Exceeded."
    assert raised.value.fields == {"Reason": "ConcurrentInvocationLimitExceeded", "Type": "User"}


def test_only_own_idle_environments_make_room(tmp_path: Path) -> None:
    first, second, _ = shared_capacities(tmp_path, budget=1024)
    admit(second, [], 768)  # the other process holds most of the budget
    own = [Env(128, idle_since=1.0), Env(128, idle_since=2.0)]
    admit(first, own, 256)  # 768 + 256 + 256 = 1280: both own idle ones must go
    assert [e.alive for e in own] == [False, False]
    with pytest.raises(TooManyRequests):
        admit(first, [], 512)  # nothing of its own left to stop: 429 as today


def test_published_memory_comes_down_when_environments_stop(tmp_path: Path) -> None:
    first, second, counters = shared_capacities(tmp_path, budget=1024)
    live = [Env(512, idle_since=1.0, state=EnvState.BUSY)]
    admit(second, [], 512)
    assert counters.others_memory_mb() == 512
    second.publish(live)  # type: ignore[arg-type]
    assert counters.others_memory_mb() == 512
    live[0].stop()
    second.publish(live)  # type: ignore[arg-type]
    assert counters.others_memory_mb() == 0
    admit(first, [], 1024)  # the whole budget is free again


def test_publish_without_shared_counters_does_nothing() -> None:
    capacity(budget=1024, available=None).publish([Env(512, idle_since=0.0)])  # type: ignore[list-item]
