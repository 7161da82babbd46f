"""Libraries lamina lends to every Python function, behind the function's own code.

Lambda's Python runtimes carry `snapshot_restore_py` (SnapStart's runtime hooks); lamina
installs the same package from PyPI as a dependency of its own and copies its single
pure-Python module into a folder the runtime appends to the function's import path. A
function that ships its own copy gets its own.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

LENT_MODULES = ("snapshot_restore_py",)


def lend_runtime_libraries(folder: Path) -> Path | None:
    folder.mkdir(parents=True, exist_ok=True)
    lent = False
    for name in LENT_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        shutil.copyfile(spec.origin, folder / f"{name}.py")
        lent = True
    return folder if lent else None
