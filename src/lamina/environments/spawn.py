"""Environments forked from per-interpreter zygotes, with `exec` as the fallback.

Either way the process is a session leader (its pid is its process group, so a kill
reaches whatever it started) with `wait()` for its exit code. A spec that carries a
sandbox (`LaunchSpec.sandbox`) is started in it: a fork enters it in the child, an
exec runs under bubblewrap (see sandbox.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lamina.environments.prefault import PageLearner
from lamina.environments.process import Child, ExecSpawner, LaunchSpec
from lamina.environments.sandbox import Sandbox, SandboxedChild, StemUnusable, host_env
from lamina.environments.stems import StemPool
from lamina.environments.zygote import ForkedChild, ForkServer, Zygote, ZygoteUnavailable

log = logging.getLogger("lamina.spawn")


class ZygoteSpawner:
    """Forks Python environments from a per-interpreter zygote, started in the background
    at start-up; anything else, or a Python whose zygote is not (yet) up, is exec'd."""

    def __init__(
        self,
        interpreters: Sequence[str],
        preload: Sequence[str],
        env: Mapping[str, str],
        sandbox: Sandbox | None = None,
        stems: int = 0,
        preexec: Callable[[], None] | None = None,  # run in each exec'd child before exec
        run_root: Path | None = None,  # environments' folders: where zygotes build roots
        prefault: bool = True,  # stems copy the pages environments are learned to write
    ) -> None:
        self._prefault = prefault
        self._zygotes = {
            python: Zygote(python, preload, env, preexec) for python in set(interpreters)
        }
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._sandbox = sandbox
        self._run_root = run_root
        self._exec = ConfinedExecSpawner(sandbox, preexec)
        # Parked stems per zygote (stems.py): sandboxed ones where forks join cgroups,
        # else bare ones, for environments that are plain forks.
        confined = sandbox is not None and sandbox.forks_confined and sandbox.protections.cgroups
        self._stems: dict[str, StemPool] = {
            python: StemPool(sandbox if confined else None, stems) for python in self._zygotes
        }
        # Per running zygote with stems: what its new environments write (prefault.py).
        self._learners: dict[str, PageLearner] = {}

    @property
    def prefault(self) -> bool:
        """Whether stems copy the pages new environments are learned to write."""
        return self._prefault

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for python, zygote in self._zygotes.items():
            self._starting[python] = loop.create_task(self._start(zygote))

    async def _start(self, zygote: Zygote) -> None:
        try:
            await zygote.start()
        except ZygoteUnavailable as exc:
            log.warning("%s; environments of %s will be exec'd", exc, zygote.python)
            return
        server = zygote.server
        if server is None:
            return
        # Ready the zygote for its first environment now, not while a caller waits for
        # it: its shared sandbox root (~10 ms), then parked stems (a cgroup join each,
        # 10-25 ms on v1), which it refuses until that root is built. Measured: a serving
        # process's first new environment took 25-55 ms to its init's end, the next ~7.
        plan = (
            self._sandbox.base_plan(self._run_root)
            if self._sandbox is not None and self._run_root is not None
            else None
        )
        if plan is not None:
            try:
                await server.prepare(plan)
            except ZygoteUnavailable as exc:
                log.warning("%s could not build its sandbox root ahead: %s", zygote.python, exc)
                return
        stems = self._stems.get(zygote.python)
        if stems is not None and self._prefault:
            # Learned anew for each zygote process: addresses are its own (ASLR).
            self._learners[zygote.python] = PageLearner(server.prefault)
        if stems is not None:
            # One each to begin with: enough for a process's first environment, and
            # most of the Pythons found may never run a function (the first take tops
            # the pool up to LAMINA_STEMS).
            stems.top_up(server, at_most=1)

    async def server_for(self, python: str | None) -> ForkServer | None:
        """The running zygote of `python`, waiting for it on the first start; None when
        there is none (a dead one is restarted in the background for next time)."""
        zygote = self._zygotes.get(python or "")
        if zygote is None:
            return None
        starting = self._starting.get(zygote.python)
        if starting is not None and not starting.done():
            await asyncio.shield(starting)
        if zygote.alive:
            return zygote.server
        if starting is None or starting.done():
            self._starting[zygote.python] = asyncio.get_running_loop().create_task(
                self._start(zygote)
            )
        return None

    async def spawn(self, spec: LaunchSpec, out_fd: int, channel_fd: int | None = None) -> Child:
        server = await self.server_for(spec.python)
        if server is not None:
            stems = self._stems.get(spec.python or "")
            if stems is not None and stems.bare != _plain(spec, self._sandbox):
                stems = None  # a sandboxed environment needs a sandboxed stem, and back
            try:
                child = await fork(server, spec, out_fd, self._sandbox, channel_fd, stems)
                learner = self._learners.get(spec.python or "")
                if learner is not None:
                    learner.watch(child)
                return child
            except ZygoteUnavailable as exc:
                log.warning("%s; exec'ing instead", exc)
            finally:
                if stems is not None:
                    stems.refill(server)
        return await self._exec.spawn(spec, out_fd)

    async def close(self) -> None:
        for pool in self._stems.values():
            pool.close()
        for learner in self._learners.values():
            learner.close()
        for task in self._starting.values():
            task.cancel()
        for zygote in self._zygotes.values():
            zygote.close()


def _plain(spec: LaunchSpec, sandbox: Sandbox | None) -> bool:
    """Whether a fork of `spec` enters no sandbox."""
    return sandbox is None or spec.sandbox is None or not sandbox.forks_confined


async def fork(
    server: ForkServer,
    spec: LaunchSpec,
    out_fd: int,
    sandbox: Sandbox | None,
    channel_fd: int | None = None,
    stems: StemPool | None = None,
) -> ForkedChild | SandboxedChild:
    """Fork an environment from `server` (a zygote or a SnapStart template), in its
    sandbox when the spec asks for one and this machine allows it; a parked stem from
    `stems` becomes it when there is one."""
    if _plain(spec, sandbox):
        stem = stems.take() if stems is not None else None
        if stems is not None and stem is not None:
            try:
                return await server.fork(
                    spec.runtime_argv, spec.env, spec.cwd, out_fd, None, channel_fd,
                    stem=stem.name,
                )  # fmt: skip
            except ZygoteUnavailable as exc:
                log.debug("stem %s not used: %s", stem.name, exc)
                stems.discard(stem)  # and start the ordinary way
        return await server.fork(spec.runtime_argv, spec.env, spec.cwd, out_fd, None, channel_fd)
    assert sandbox is not None
    return await confined_fork(server, spec, sandbox, out_fd, channel_fd, stems)


async def confined_fork(
    server: ForkServer,
    spec: LaunchSpec,
    sandbox: Sandbox,
    out_fd: int,
    channel_fd: int | None,
    stems: StemPool | None,
    depth: int = 1,
) -> SandboxedChild:
    """Fork `spec`'s environment in its sandbox: from a parked stem when there is one
    (sized for it now), else a fresh fork that joins its cgroups itself. `depth`: how
    far below the forked process the function runs (SandboxedChild)."""
    confinement = spec.sandbox
    assert confinement is not None
    env = confinement.inside(spec.env)
    stem = stems.take() if stems is not None else None
    if stems is not None and stem is not None:
        try:
            prepared = sandbox.prepare(confinement, stem.cgroup)
            child = await server.fork(
                spec.runtime_argv, env, spec.cwd, out_fd, prepared.plan, channel_fd,
                stem=stem.name,
            )  # fmt: skip
            return SandboxedChild(child, prepared, depth=depth)
        except (StemUnusable, ZygoteUnavailable) as exc:
            log.debug("stem %s not used: %s", stem.name, exc)
            stems.discard(stem)  # and start the ordinary way
    prepared = sandbox.prepare(confinement)
    try:
        child = await server.fork(
            spec.runtime_argv, env, spec.cwd, out_fd, prepared.plan, channel_fd
        )
    except BaseException:
        prepared.release()
        raise
    return SandboxedChild(child, prepared, depth=depth)


class ConfinedExecSpawner:
    """exec'd environments, under bubblewrap when the spec asks for a sandbox and this
    machine has bubblewrap; plain `exec` otherwise."""

    def __init__(self, sandbox: Sandbox | None, preexec: Callable[[], None] | None = None) -> None:
        self._sandbox = sandbox
        self._exec = ExecSpawner(preexec)

    async def spawn(self, spec: LaunchSpec, out_fd: int, channel_fd: int | None = None) -> Child:
        sandbox, confinement = self._sandbox, spec.sandbox
        if sandbox is None or confinement is None or not sandbox.execs_confined:
            return await self._exec.spawn(spec, out_fd)
        prepared = sandbox.prepare(confinement)
        # The host-side processes (root, before the sandbox) never see loader variables.
        env, inside_only = host_env(confinement.inside(spec.env))
        confined = dataclasses.replace(
            spec,
            argv=sandbox.bwrap_argv(map(confinement.inside_path, spec.argv), prepared, inside_only),
            env=env,
        )
        try:
            child = await self._exec.spawn(confined, out_fd)
        except BaseException:
            prepared.release()
            raise
        return SandboxedChild(child, prepared, depth=2)  # bubblewrap, its init, the function
