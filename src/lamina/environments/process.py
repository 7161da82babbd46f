"""How an environment's process starts: what to run (`LaunchSpec`), the handle lamina
keeps on it (`Child`), and who starts it (`Spawner`; forks from zygotes and SnapStart
templates live in spawn.py and snapshots.py, `exec` here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lamina.environments.sandbox import Confinement


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    argv: tuple[str, ...]  # to exec
    env: dict[str, str]
    cwd: str
    tmp_dir: Path
    # For Python runtimes: the interpreter, and the argv its runtime client gets when the
    # environment is forked from that interpreter's zygote instead of exec'd.
    python: str | None = None
    runtime_argv: tuple[str, ...] = ()
    # The sandbox to start it in (environments/sandbox.py); None: none.
    sandbox: Confinement | None = None


class Child(Protocol):
    pid: int

    async def wait(self) -> int: ...


class Spawner(Protocol):
    """Starts an environment's process with stdout and stderr on `out_fd`.

    `channel_fd`, for the built-in Python runtime, is its end of the private runtime
    channel (runtime_channel.py); a spawner that cannot hand it over ignores it, and
    the runtime then speaks the HTTP Runtime API instead.
    """

    async def spawn(
        self, spec: LaunchSpec, out_fd: int, channel_fd: int | None = None
    ) -> Child: ...


class ExecSpawner:
    """A new process from `exec`: always possible, never the fastest.

    `preexec` runs in the child before exec (colocation.py's `spread_child`)."""

    def __init__(self, preexec: Callable[[], None] | None = None) -> None:
        self._preexec = preexec

    async def spawn(self, spec: LaunchSpec, out_fd: int, channel_fd: int | None = None) -> Child:
        process = await asyncio.create_subprocess_exec(
            *spec.argv, env=spec.env, cwd=spec.cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=out_fd, stderr=out_fd, start_new_session=True,
            preexec_fn=self._preexec,
        )  # fmt: skip
        return process
