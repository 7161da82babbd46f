"""Settings: the one place lamina reads configuration from the environment.

`Settings.from_env(mapping)` is pure: it takes the mapping (normally `os.environ`,
passed in by the CLI) and returns a frozen value that is passed down explicitly.
Nothing else in lamina reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8790
DEFAULT_ACCOUNT_ID = "000000000000"
DEFAULT_REGION = "us-east-1"


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "/tmp")) / ".local" / "share")
    return Path(base) / "lamina"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


AUTO_WORKERS_MAX = 4  # each serving process keeps its own zygotes and environments


def auto_workers() -> int:
    """One serving process per CPU lamina may use, at most AUTO_WORKERS_MAX."""
    return max(1, min(len(os.sched_getaffinity(0)), AUTO_WORKERS_MAX))


def _workers(env: Mapping[str, str]) -> int:
    """LAMINA_WORKERS: a count of serving processes, or `auto` (the default)."""
    if env.get("LAMINA_WORKERS", "auto").strip().lower() in ("", "auto"):
        return auto_workers()
    count = _int(env, "LAMINA_WORKERS", 1)
    if count < 1:
        raise ValueError(f"LAMINA_WORKERS must be at least 1 or 'auto', got {count}")
    return count


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = Path(".lamina")
    config_file: Path | None = None
    # Root credentials; None means "load from the data dir or generate on first start".
    access_key_id: str | None = None
    secret_access_key: str | None = None
    account_id: str = DEFAULT_ACCOUNT_ID
    region: str = DEFAULT_REGION
    # Explicit interpreter per runtime ("python3.12" -> "/usr/bin/python3.12"); the rest
    # are discovered on PATH and in pyenv.
    python_interpreters: Mapping[str, str] = field(default_factory=dict)
    # Directories searched for interpreters (PATH, pyenv's versions); discovery only.
    search_path: tuple[str, ...] = ()
    # PATH given to function processes.
    function_path: str = "/usr/local/bin:/usr/bin:/bin"
    # Account-wide concurrent executions, as Lambda's default quota.
    concurrency_limit: int = 1000
    # Async invoke workers draining the durable event queue.
    async_workers: int = 16
    # Warm environments idle longer than this are stopped.
    idle_environment_s: float = 600.0
    # After an update of $LATEST, start up to this many environments of the new revision
    # (as many as were live) before the next call needs one; 0: off (deploy_warmer.py).
    prewarm_on_deploy: int = 4
    # While invocations run one at a time, pin the event loop and the environment it
    # waits on to one CPU (environments/colocation.py); off: leave placement to the kernel.
    colocate: bool = True
    # First retry delay of a failed async invoke; doubles per retry (Lambda waits ~1 min).
    async_retry_base_s: float = 1.0
    # Sum of MemorySize of live environments this node allows; 0: 8x RAM (capacity.py).
    memory_budget_mb: int = 0
    memory_reserve_mb: int = -1  # MemAvailable kept free beyond a new environment; -1: 5% of RAM
    # New environments per function: a burst at once, then a steady rate (Lambda's
    # documented scaling is 1,000 every 10 seconds).
    scale_burst: int = 1000
    scale_rate_per_s: float = 100.0
    # Fork Python environments from per-interpreter zygotes (else exec each one).
    zygotes: bool = True
    # Stems parked per zygote in fresh cgroups, ahead of new environments (stems.py).
    stems: int = 2
    # Stems copy the pages new environments are learned to write (prefault.py).
    prefault: bool = True
    # The built-in Python runtime's private channel (else it speaks HTTP like any other).
    runtime_channel: bool = True
    # Start environments in a sandbox (namespaces, cgroups) as far as the kernel allows.
    sandbox: bool = True
    # Serving processes on the API port: the primary and workers-1 workers, which serve
    # Invoke from environments of their own and pass everything else to the primary
    # (serving/). 1: the primary alone. `from_env` defaults to one per CPU (at most 4).
    workers: int = 1
    # Modules each Python zygote imports up front (those an interpreter lacks are skipped).
    zygote_preload: tuple[str, ...] = (
        "json", "decimal", "datetime", "uuid", "base64", "hashlib", "urllib.request",
        "boto3",
    )  # fmt: skip
    # The key-encryption key (base64 of 32 bytes); else <data-dir>/master.key is used.
    master_key: str | None = field(default=None, repr=False)
    # Free-form YAML configuration (gateway, ...) loaded from config_file.
    config: Mapping[str, Any] = field(default_factory=dict)
    # The variables `${NAME}` in the config file is interpolated from.
    config_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        interpreters = {
            f"python3.{key[len('LAMINA_PYTHON3_'):]}": value
            for key, value in env.items()
            if key.startswith("LAMINA_PYTHON3_") and value
        }
        search = [p for p in env.get("PATH", "").split(os.pathsep) if p]
        pyenv_root = env.get("PYENV_ROOT") or str(Path(env.get("HOME", "/root")) / ".pyenv")
        search.append(str(Path(pyenv_root) / "versions"))
        preload = env.get("LAMINA_ZYGOTE_PRELOAD")
        if preload is not None:
            overrides.setdefault("zygote_preload", tuple(m for m in preload.split(",") if m))
        settings = cls(
            host=env.get("LAMINA_HOST", "127.0.0.1"),
            port=_int(env, "LAMINA_PORT", DEFAULT_PORT),
            data_dir=Path(env.get("LAMINA_DATA_DIR") or default_data_dir(env)),
            access_key_id=env.get("LAMINA_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("LAMINA_SECRET_ACCESS_KEY") or None,
            account_id=env.get("LAMINA_ACCOUNT_ID", DEFAULT_ACCOUNT_ID),
            region=env.get("LAMINA_REGION", DEFAULT_REGION),
            python_interpreters=interpreters,
            search_path=tuple(search),
            function_path=env.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
            concurrency_limit=_int(env, "LAMINA_CONCURRENCY_LIMIT", 1000),
            memory_budget_mb=_int(env, "LAMINA_MEMORY_BUDGET_MB", 0),
            memory_reserve_mb=_int(env, "LAMINA_MEMORY_RESERVE_MB", -1),
            scale_burst=_int(env, "LAMINA_SCALE_BURST", 1000),
            scale_rate_per_s=float(env.get("LAMINA_SCALE_RATE_PER_S", "100")),
            async_workers=_int(env, "LAMINA_ASYNC_WORKERS", 16),
            idle_environment_s=float(env.get("LAMINA_IDLE_ENVIRONMENT_S", "600")),
            prewarm_on_deploy=_int(env, "LAMINA_PREWARM_ON_DEPLOY", 4),
            colocate=env.get("LAMINA_COLOCATE", "1").lower() not in ("0", "false", "no", "off"),
            config_env=dict(env),
            master_key=env.get("LAMINA_MASTER_KEY") or None,
            async_retry_base_s=float(env.get("LAMINA_ASYNC_RETRY_BASE_S", "1")),
            zygotes=env.get("LAMINA_ZYGOTES", "1").lower() not in ("0", "false", "no", "off"),
            stems=_int(env, "LAMINA_STEMS", 2),
            prefault=env.get("LAMINA_PREFAULT", "1").lower() not in ("0", "false", "no", "off"),
            runtime_channel=env.get("LAMINA_RUNTIME_CHANNEL", "1").lower()
            not in ("0", "false", "no", "off"),
            sandbox=env.get("LAMINA_SANDBOX", "1").lower() not in ("0", "false", "no", "off"),
            workers=_workers(env),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **clean) if clean else settings

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"
