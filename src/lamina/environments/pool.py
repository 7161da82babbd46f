"""Warm environments, kept per function revision, reused last-in first-out.

LIFO keeps the most recently used (hottest) environment busy and lets the others
age out; idle ones past the idle timeout are stopped by the reaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping

from lamina.environments.capacity import Capacity
from lamina.environments.environment import Environment
from lamina.environments.launcher import HostFacts, build_spec
from lamina.environments.lifecycle import EnvState
from lamina.environments.logs import LogSink
from lamina.environments.process import LaunchSpec, Spawner
from lamina.environments.snapshots import SnapshotFailed, Snapshots, TemplateSpawner
from lamina.functions.model import FunctionConfig

# Environments are recycled before their role credentials (12 h) run out, as Lambda
# recycles its own every few hours; a provisioned one is replaced by its keeper.
MAX_ENVIRONMENT_AGE_S = 11 * 3600.0


class EnvironmentPool:
    def __init__(
        self,
        facts: HostFacts,
        logs: LogSink,
        idle_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        spawner: Spawner | None = None,
        snapshots: Snapshots | None = None,
        capacity: Capacity | None = None,
        credentials: Callable[[FunctionConfig], Awaitable[Mapping[str, str]]] | None = None,
        runtime_channel: bool = True,
    ) -> None:
        self._facts = facts
        # The built-in runtime's private channel (runtime_channel.py); off: HTTP only.
        self._runtime_channel = runtime_channel
        self._capacity = capacity
        # The execution role's temporary credentials, as AWS_ACCESS_KEY_ID & co.
        self._credentials = credentials
        self._spawner = spawner
        self._snapshots = snapshots
        self._logs = logs
        self._idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._idle: dict[str, list[Environment]] = {}
        self._live: set[Environment] = set()
        self._reaper: asyncio.Task[None] | None = None
        # Told (code key, change) whenever the idle environments of a revision change in
        # number: the other serving processes' hint of where a warm one is (serving/).
        self.idle_hint: Callable[[str, int], None] | None = None

    def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for env in list(self._live):
            env.stop()
        self._live.clear()
        for key, stack in self._idle.items():
            self._hint(key, -len(stack))
        self._idle.clear()
        self._publish()

    def take_idle(self, config: FunctionConfig) -> Environment | None:
        stack = self._idle.get(config.code_key)
        while stack:
            env = stack.pop()
            if self.idle_hint is not None:
                self.idle_hint(config.code_key, -1)
            if env.alive and env.state is EnvState.IDLE:
                return env
            self._live.discard(env)
        return None

    def has_idle(self, config: FunctionConfig) -> bool:
        """Is an environment of this revision idle here (a call would find it warm)?"""
        return bool(self._idle.get(config.code_key))

    async def launch(
        self, config: FunctionConfig, initialization: str | None = None
    ) -> Environment:
        env_id = secrets.token_hex(16)
        spawner, restored = self._spawner, False
        if config.snapshotted and self._snapshots is not None:
            # If the snapshot fails, an ordinary start reports the init error the usual way.
            with contextlib.suppress(SnapshotFailed):
                spawner, restored = TemplateSpawner(await self._snapshots.ensure(config)), True
        # Admitted with no await before it joins `_live`: what the pool publishes of its
        # memory (to other serving processes) always counts it.
        if self._capacity is not None:
            self._capacity.admit(config, self._live)  # may stop idle ones, or raise 429
        env = Environment(
            env_id, config, self._logs, self._clock, spawner, restored, self._runtime_channel
        )
        env.on_idle = self.release
        self._live.add(env)
        stream = env.log_stream_name
        try:
            role_env = await self._credentials(config) if self._credentials is not None else {}

            def spec_for(api: str) -> LaunchSpec:
                spec = build_spec(
                    config, env_id, api, self._facts, stream, initialization, egress=config.egress
                )
                spec.env.update(role_env)  # reserved keys: a function cannot set them itself
                return spec

            await env.start(spec_for)
        except BaseException:
            # Not started (no credentials, no process, or the call was cancelled): it must
            # not stay counted as live here, nor hold its memory in the budget.
            env.stop()
            self._live.discard(env)
            self._publish()
            raise
        return env

    def release(self, env: Environment) -> None:
        if env.alive and env.state is EnvState.IDLE:
            self._idle.setdefault(env.config.code_key, []).append(env)
            self._hint(env.config.code_key, 1)
        else:
            self._live.discard(env)

    def retire(
        self, function: str, keep: Callable[[FunctionConfig], bool] = lambda _: False
    ) -> None:
        """Stop idle environments of `function` whose revision is no longer wanted."""
        for key in [k for k in self._idle if k.split(":", 1)[0] == function]:
            stack = self._idle[key]
            if stack and keep(stack[0].config):
                continue
            self._hint(key, -len(stack))
            for env in self._idle.pop(key):
                env.stop()
                self._live.discard(env)
        self._publish()

    def describe(self) -> list[dict[str, object]]:
        """Every live environment with its state and memory (for `lamina envs`)."""
        now = self._clock()
        rows: list[dict[str, object]] = []
        for env in sorted(self._live, key=lambda e: (e.config.name, e.config.version, e.id)):
            if not env.alive:
                continue
            rows.append(
                {
                    "id": env.id,
                    "function": env.config.name,
                    "version": env.config.version,
                    "revision": env.config.revision_id,
                    "state": env.state.value,
                    "pid": env.pid,
                    "memory_mb": env.config.memory_mb,
                    "provisioned": env.provisioned,
                    "restored": env.restored,
                    "idle_s": round(now - env.idle_since, 1) if env.state is EnvState.IDLE else 0,
                    **env.memory(),
                }
            )
        return rows

    def live_of(self, function: str, version: str, *, exclude_code_key: str = "") -> int:
        """How many live environments run `function`'s `version`, other than of the
        revision `exclude_code_key`."""
        return sum(
            1
            for e in self._live
            if e.alive
            and e.config.name == function
            and e.config.version == version
            and e.config.code_key != exclude_code_key
        )

    def count(self, function: str | None = None) -> int:
        return sum(
            1 for e in self._live if e.alive and (function is None or e.config.name == function)
        )

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, max(0.5, self._idle_timeout_s / 4)))
            now = self._clock()
            cutoff = now - self._idle_timeout_s
            for key in list(self._idle):
                keep = []
                for env in self._idle[key]:
                    too_old = now - env.started_at > MAX_ENVIRONMENT_AGE_S
                    if env.alive and not too_old and (env.provisioned or env.idle_since >= cutoff):
                        keep.append(env)
                    else:
                        env.stop()
                        self._live.discard(env)
                self._hint(key, len(keep) - len(self._idle[key]))
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
            self._publish()

    def _hint(self, key: str, change: int) -> None:
        if change and self.idle_hint is not None:
            self.idle_hint(key, change)

    def _publish(self) -> None:
        """Let other serving processes see the memory this one's environments hold now
        (a figure left high only refuses more: it is brought down here, not per stop)."""
        if self._capacity is not None:
            self._capacity.publish(self._live)
