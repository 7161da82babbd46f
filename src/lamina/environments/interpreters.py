"""Find a Python interpreter on this machine for each python3.X runtime.

Explicit settings win; otherwise the first `python3.X` on the search path that really
runs and reports version 3.X (pyenv shims can exist for versions that are not
active, so each candidate is asked, not trusted by its name).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

PYTHON_RUNTIMES = ("python3.10", "python3.11", "python3.12", "python3.13")
CUSTOM_RUNTIMES = ("provided.al2023", "provided.al2", "provided")


def _candidates(runtime: str, search_path: Iterable[str]) -> list[str]:
    found: list[str] = []
    for entry in search_path:
        folder = Path(entry)
        if folder.name == "versions" and folder.is_dir():  # pyenv's versions folder
            version = runtime.removeprefix("python")
            for sub in sorted(folder.glob(f"{version}.*"), reverse=True):
                found.append(str(sub / "bin" / runtime))
        else:
            found.append(str(folder / runtime))
    return [c for c in found if os.access(c, os.X_OK)]


# The interpreter's own path, not the candidate's: a pyenv shim is a shell script that
# would add tens of milliseconds to every environment start, and a virtualenv's python
# would leak that venv's packages into functions.
_PROBE = "import sys; print('%d.%d' % sys.version_info[:2]); print(getattr(sys, '_base_executable', '') or sys.executable)"


async def _probe(path: str, runtime: str) -> str | None:
    """The real executable behind `path` if it runs and is the runtime's version."""
    want = runtime.removeprefix("python")
    try:
        proc = await asyncio.create_subprocess_exec(
            path, "-c", _PROBE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    except (OSError, TimeoutError):
        return None
    lines = out.decode().split()
    if proc.returncode != 0 or len(lines) != 2 or lines[0] != want:
        return None
    return str(Path(lines[1]).resolve())


async def _first_working(runtime: str, candidates: list[str]) -> str | None:
    for path in candidates:
        found = await _probe(path, runtime)
        if found is not None:
            return found
    return None


async def discover(explicit: Mapping[str, str], search_path: Iterable[str]) -> dict[str, str]:
    """Runtime name -> absolute interpreter path, for the runtimes this machine has."""
    paths = tuple(search_path)
    runtimes = [r for r in PYTHON_RUNTIMES if r not in explicit]
    found = await asyncio.gather(*(_first_working(r, _candidates(r, paths)) for r in runtimes))
    result = dict(explicit)
    result.update({r: p for r, p in zip(runtimes, found, strict=True) if p is not None})
    return dict(sorted(result.items()))
