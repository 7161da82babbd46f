"""Provisioned concurrency: N initialised environments of a version kept ready.

One keeper task per (function, qualifier) holds the count: it pre-warms environments
(`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`), hands them to the pool as
idle (exempt from idle reaping), replaces any that die, and retires extras when the
count goes down. Invocations beyond the warm ones spill over to on-demand starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass, field

from lamina.environments.environment import Environment
from lamina.environments.pool import EnvironmentPool
from lamina.functions.model import FunctionConfig

log = logging.getLogger("lamina.provisioned")
INIT_TIMEOUT_S = 60.0
RETRY_DELAY_S = 5.0


class FleetStatus(enum.StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    READY = "READY"
    FAILED = "FAILED"


@dataclass(slots=True)
class _Fleet:
    config: FunctionConfig
    requested: int
    envs: set[Environment] = field(default_factory=set)
    status: FleetStatus = FleetStatus.IN_PROGRESS
    reason: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def allocated(self) -> int:
        return sum(1 for e in self.envs if e.alive)


@dataclass(frozen=True, slots=True)
class FleetState:
    requested: int
    allocated: int
    available: int
    status: FleetStatus
    reason: str


class ProvisionedFleets:
    def __init__(self, pool: EnvironmentPool) -> None:
        self._pool = pool
        self._fleets: dict[tuple[str, str], _Fleet] = {}

    def set(self, function: str, qualifier: str, config: FunctionConfig, count: int) -> None:
        key = (function, qualifier)
        fleet = self._fleets.get(key)
        if fleet is not None and fleet.config.code_key != config.code_key:
            self.remove(function, qualifier)  # another version now: start over
            fleet = None
        if fleet is None:
            fleet = self._fleets[key] = _Fleet(config, count)
            fleet.task = asyncio.get_running_loop().create_task(self._keep(fleet))
        else:
            fleet.requested = count
            fleet.status = FleetStatus.IN_PROGRESS
            fleet.changed.set()

    def state(self, function: str, qualifier: str) -> FleetState | None:
        fleet = self._fleets.get((function, qualifier))
        if fleet is None:
            return None
        allocated = min(fleet.allocated, fleet.requested)
        return FleetState(fleet.requested, allocated, allocated, fleet.status, fleet.reason)

    def remove(self, function: str, qualifier: str | None = None) -> None:
        for key in [k for k in self._fleets if k[0] == function and qualifier in (None, k[1])]:
            fleet = self._fleets.pop(key)
            if fleet.task is not None:
                fleet.task.cancel()
            for env in fleet.envs:
                env.provisioned = False  # on-demand from now on: reaped when idle

    async def close(self) -> None:
        tasks = [f.task for f in self._fleets.values() if f.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fleets.clear()

    async def _keep(self, fleet: _Fleet) -> None:
        while True:
            fleet.changed.clear()
            fleet.envs = {e for e in fleet.envs if e.alive}
            while len(fleet.envs) > fleet.requested:  # shrink: extras go back to on-demand
                extra = fleet.envs.pop()
                extra.provisioned = False
            missing = fleet.requested - len(fleet.envs)
            if missing > 0:
                results = await asyncio.gather(*(self._warm_one(fleet) for _ in range(missing)))
                failures = [r for r in results if r is not None]
                if failures:
                    fleet.status, fleet.reason = FleetStatus.FAILED, failures[0]
                    log.warning("provisioned concurrency for %s: %s", fleet.config.name, failures[0])
                    await asyncio.sleep(RETRY_DELAY_S)
                    continue
            fleet.status, fleet.reason = FleetStatus.READY, ""
            # Sleep until an environment dies or the requested count changes.
            waits: list[asyncio.Future[object]] = [
                asyncio.ensure_future(e.exited()) for e in fleet.envs
            ]
            waits.append(asyncio.ensure_future(fleet.changed.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
            if any(not e.alive for e in fleet.envs):
                fleet.status = FleetStatus.IN_PROGRESS

    async def _warm_one(self, fleet: _Fleet) -> str | None:
        env = await self._pool.launch(fleet.config, initialization="provisioned-concurrency")
        env.provisioned = True
        failure = await env.warm(max(INIT_TIMEOUT_S, float(fleet.config.timeout_s)))
        if failure is None:
            fleet.envs.add(env)
        self._pool.release(env)  # idle in the pool, or forgotten if it did not start
        return failure
