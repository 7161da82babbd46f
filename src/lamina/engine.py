"""The environment engine's parts as `lamina serve` builds them from its settings: the
same for the primary (app.py) and for each worker (serving/worker.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from lamina.environments.capacity import Capacity, default_budget_mb
from lamina.environments.colocation import CoLocation
from lamina.environments.sandbox import Sandbox
from lamina.environments.spawn import ConfinedExecSpawner, ZygoteSpawner
from lamina.serving.shared import SharedCounters
from lamina.settings import Settings


def colocation_for(settings: Settings) -> CoLocation | None:
    """Made before anything spawns: it keeps the CPUs lamina started with. Only the private
    runtime channel carries its hint, so without the channel there is nothing to pin."""
    return CoLocation() if settings.colocate and settings.runtime_channel else None


def spawner_for(
    settings: Settings,
    interpreters: list[str],
    sandbox: Sandbox,
    colocation: CoLocation | None,
    run_root: Path,
) -> ZygoteSpawner | ConfinedExecSpawner:
    """Zygotes (not started yet: `start()` them), or exec when LAMINA_ZYGOTES=0.
    `run_root`: the environments' folders (HostFacts.run_root), where zygotes build the
    root their children share."""
    preexec = colocation.spread_child if colocation is not None else None
    if not settings.zygotes:
        return ConfinedExecSpawner(sandbox, preexec)
    env = {"PATH": settings.function_path, "LANG": "en_US.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    return ZygoteSpawner(
        interpreters, settings.zygote_preload, env, sandbox, stems=settings.stems, preexec=preexec,
        run_root=run_root, prefault=settings.prefault,
    )  # fmt: skip


def capacity_for(settings: Settings, shared: SharedCounters | None) -> Capacity:
    budget = settings.memory_budget_mb or default_budget_mb()
    reserve = settings.memory_reserve_mb if settings.memory_reserve_mb >= 0 else None
    return Capacity(
        budget, settings.scale_burst, settings.scale_rate_per_s, reserve_mb=reserve, shared=shared
    )


def closing(close: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    """A plain `close()` in the shape of the async closers start-up collects."""

    async def run() -> None:
        close()

    return run
