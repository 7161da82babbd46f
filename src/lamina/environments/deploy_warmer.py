"""Pre-warming after a deploy: a function that was warm stays warm across an update.

An update of `$LATEST` (code or configuration) retires the environments of the old
revision, so without this the next calls would all start cold, right when a deploy
is being checked. The warmer notes how many environments of `$LATEST` were live when
the update landed and, once the new revision is Active, starts that many (at most
`limit`) of it in the background, initialised and idle, as Lambda's proactive
initialisation does. They are ordinary on-demand environments: reaped when idle,
admitted by the node's memory budget (a refusal only means fewer are pre-warmed), and
their first invocation reports no Init Duration, since its init was not on its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from lamina.environments.pool import EnvironmentPool
from lamina.errors import LaminaError
from lamina.functions.model import LATEST, Function, FunctionConfig

INIT_TIMEOUT_S = 10.0  # Lambda's on-demand init allowance

log = logging.getLogger(__name__)


class DeployWarmer:
    def __init__(self, pool: EnvironmentPool, limit: int) -> None:
        self._pool = pool
        self._limit = limit
        self._pending: dict[str, tuple[str, int]] = {}  # function -> (revision, how many)
        self._tasks: set[asyncio.Task[None]] = set()

    def note_change(self, fn: Function) -> None:
        """Before the old revision's environments are retired: count them."""
        if self._limit <= 0:
            return
        latest = fn.latest
        warm = self._pool.live_of(latest.name, LATEST, exclude_code_key=latest.code_key)
        # An update that lands before the last one was pre-warmed carries its count on.
        carried = self._pending.pop(latest.name, ("", 0))[1]
        count = min(max(warm, carried), self._limit)
        if count:
            self._pending[latest.name] = (latest.revision_id, count)

    def forget(self, function: str) -> None:
        """The function is gone: nothing of it to pre-warm."""
        self._pending.pop(function, None)

    def activated(self, config: FunctionConfig) -> None:
        """A revision became Active: pre-warm it if it replaced warm environments."""
        pending = self._pending.get(config.name)
        if pending is None or config.version != LATEST or pending[0] != config.revision_id:
            return
        del self._pending[config.name]
        for _ in range(pending[1]):
            task = asyncio.get_running_loop().create_task(self._warm_one(config))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _warm_one(self, config: FunctionConfig) -> None:
        try:
            env = await self._pool.launch(config)
        except LaminaError as exc:  # the memory budget is full: fewer pre-warmed, that is all
            log.info("not pre-warming %s: %s", config.name, exc)
            return
        failure = await env.warm(max(INIT_TIMEOUT_S, float(config.timeout_s)))
        if failure is not None:
            log.info("pre-warming %s failed: %s", config.name, failure)
        self._pool.release(env)  # idle in the pool, or forgotten if it did not start

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
