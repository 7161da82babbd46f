"""Stems: zygote children parked in fresh cgroups, ahead of need.

Joining a cgroup is a new sandboxed environment's slowest step on cgroup v1: each
write to `cgroup.procs` waits for an RCU grace period, measured 10-25 ms here — more
than everything else in a new environment together. A stem pays it before anyone
waits: the zygote forks it (into a PID namespace of its own), it joins unsized groups
and parks. A new environment then takes a stem instead of a fresh fork: lamina sizes
the stem's groups for the function (cheap writes) and the zygote hands the stem the
fork request, which it carries out as a freshly forked child would, minus the join.
The pool is topped up in the background after each take; a stem that died while
parked is skipped, and with none ready an environment starts the ordinary way.
(OpenWhisk's and Fission's pre-warmed "stem cells" are the same idea, one level up.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections import deque
from dataclasses import dataclass

from lamina.environments.cgroups import EnvironmentCgroup
from lamina.environments.sandbox import Sandbox
from lamina.environments.zygote import ForkedChild, ForkServer, ZygoteUnavailable

log = logging.getLogger("lamina.stems")

# A stem taken is replaced this long after, not at once: parking one (a fork, a cgroup
# join, a second fork and its pre-faulted pages: prefault.py) then does not take CPU
# from the environment that is starting. Measured, a no-op function's new environment
# with the refill at once against 50 ms later: p90 14-24 against 9-10 ms.
REFILL_DELAY_S = 0.05


@dataclass(slots=True)
class Stem:
    name: str
    cgroup: EnvironmentCgroup | None  # None: a bare stem (no sandbox to join ahead)
    child: ForkedChild
    watcher: asyncio.Task[None] | None = None  # while parked: notices it dying

    @property
    def alive(self) -> bool:
        return self.child.running

    def discard(self) -> None:
        """Kill a stem nobody took; its groups go once it is gone."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child.pid, signal.SIGKILL)


class StemPool:
    """Up to `size` parked stems for one zygote.

    Without a sandbox (`sandbox` None: LAMINA_SANDBOX=0, or lamina not root) the stems
    are bare: forked ahead and waiting, with no cgroups to join, for environments that
    are plain forks. They still take the fork and its pre-faulted pages (prefault.py)
    off a new environment's start."""

    def __init__(self, sandbox: Sandbox | None, size: int, pidns: bool | None = None) -> None:
        self._sandbox = sandbox
        self._size = size
        # A zygote's stems get a PID namespace of their own; a SnapStart template's
        # environments share the template's (docs/sandbox.md), so its stems do too.
        in_sandbox = sandbox is not None and "pid" in sandbox.protections.namespaces
        self._pidns = in_sandbox if pidns is None else pidns
        self._ready: deque[Stem] = deque()
        self._filling: asyncio.Task[None] | None = None
        self._refill: asyncio.TimerHandle | None = None
        self._cleanups: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def bare(self) -> bool:
        """Whether its stems are for unsandboxed environments (no cgroups)."""
        return self._sandbox is None

    def take(self) -> Stem | None:
        """A parked stem, now the caller's (its groups and process), or None."""
        while self._ready:
            stem = self._ready.popleft()
            if stem.watcher is not None:
                stem.watcher.cancel()
            if stem.alive:
                stem.child.detach()  # the environment's own handle watches it from now
                return stem
            self._remove_later(stem)
        return None

    def refill(self, server: ForkServer) -> None:
        """Top up after a take, a moment later (REFILL_DELAY_S)."""
        if self._closed or self._refill is not None:
            return  # one is due already
        self._refill = asyncio.get_running_loop().call_later(REFILL_DELAY_S, self._refilled, server)

    def _refilled(self, server: ForkServer) -> None:
        self._refill = None
        self.top_up(server)

    def top_up(self, server: ForkServer, at_most: int | None = None) -> None:
        """Park stems until there are `size` (or `at_most`, if fewer), in the background."""
        target = self._size if at_most is None else min(self._size, at_most)
        if self._closed or target <= 0:
            return
        if self._filling is None or self._filling.done():
            self._filling = asyncio.get_running_loop().create_task(self._fill(server, target))

    async def _fill(self, server: ForkServer, target: int) -> None:
        pidns = self._pidns
        while not self._closed and len(self._ready) < target and server.open:
            name = f"stem-{secrets.token_hex(8)}"
            cgroup = None
            if self._sandbox is not None:
                cgroup = self._sandbox.stem_cgroup(name)
                if cgroup is None:
                    return  # no cgroups to join: a sandboxed stem would save nothing
            join = cgroup.procs_files if cgroup is not None else []
            try:
                child = await server.stem(name, join, pidns, bare=cgroup is None)
            except ZygoteUnavailable as exc:
                log.debug("parking a stem: %s", exc)
                if cgroup is not None:
                    cgroup.remove()
                return
            stem = Stem(name, cgroup, child)
            if self._closed:
                stem.discard()
                self._remove_later(stem)
                return
            stem.watcher = asyncio.get_running_loop().create_task(self._watch(stem))
            self._ready.append(stem)

    async def _watch(self, stem: Stem) -> None:
        """A stem that dies while parked leaves the pool, and its groups go."""
        await stem.child.wait()
        if stem in self._ready:
            self._ready.remove(stem)
            self._remove_later(stem)

    def discard(self, stem: Stem) -> None:
        """Give up a taken stem that could not be used."""
        stem.discard()
        self._remove_later(stem)

    def close(self) -> None:
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
        if self._filling is not None:
            self._filling.cancel()
        while self._ready:
            stem = self._ready.popleft()
            if stem.watcher is not None:
                stem.watcher.cancel()
            stem.discard()
            self._remove_later(stem)

    def _remove_later(self, stem: Stem) -> None:
        """Remove a dead (or killed) stem's groups once its process is gone."""

        async def remove() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stem.child.wait(), 5)
            for _ in range(100):  # its PID namespace's last processes are reaped too
                if stem.cgroup is None or stem.cgroup.remove():
                    return
                await asyncio.sleep(0.05)
            log.warning("the groups of stem %s could not be removed", stem.name)

        with contextlib.suppress(RuntimeError):  # no loop any more: the next start sweeps
            task = asyncio.get_running_loop().create_task(remove())
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)
