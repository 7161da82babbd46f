"""Build a function's deployment package: its folder plus its requirements, as a zip.

The zip is deterministic (sorted entries, fixed timestamps and modes), so the same
folder always gives the same bytes and the same CodeSha256, and a redeploy of
unchanged code is recognisably unchanged.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

SKIPPED_DIRS = frozenset({"__pycache__", ".git"})
SKIPPED_SUFFIXES = (".pyc",)
# Zip's epoch: the earliest time the format can hold, the same on every machine.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_PYTHON_RUNTIME = re.compile(r"python(3)\.(\d+)")


def usable_pip(interpreter: str) -> bool:
    """Whether `interpreter` exists here and can run pip."""
    try:
        check = subprocess.run(
            [interpreter, "-m", "pip", "--version"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return check.returncode == 0


def package_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(name in the zip, file) for every file under `root`, sorted by name."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in files:
            path = Path(folder) / name
            if name.endswith(SKIPPED_SUFFIXES) or not path.is_file():
                continue  # skips dangling links, sockets and fifos too
            found.append((path.relative_to(root).as_posix(), path))
    return iter(sorted(found))


def _mode(path: Path) -> int:
    # Keep only the executable bit: a custom runtime's `bootstrap` must stay runnable,
    # and nothing else about the builder's umask belongs in the package.
    return 0o755 if os.access(path, os.X_OK) else 0o644


def build_zip(roots: list[Path], on_file: Callable[[str], None] | None = None) -> bytes:
    """Zip the files of `roots`; where two roots hold the same name the first wins."""
    entries: dict[str, Path] = {}
    for root in roots:
        for name, path in package_files(root):
            entries.setdefault(name, path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.external_attr = (0o100000 | _mode(entries[name])) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name].read_bytes(), compresslevel=6)
            if on_file is not None:
                on_file(name)
    return buffer.getvalue()


def needs_other_python(runtime: str) -> bool:
    """Whether `runtime` is a Python other than the one running this CLI."""
    version = _PYTHON_RUNTIME.fullmatch(runtime)
    if version is None:
        return False
    return (int(version[1]), int(version[2])) != sys.version_info[:2]


def pip_command(
    requirements: Path, target: Path, runtime: str, interpreter: str | None = None
) -> list[str]:
    """The pip call that installs `requirements` into `target` for `runtime`.

    pip runs under `interpreter` (the runtime's own Python, best for packages with
    compiled parts) or else this one. When this one is another Python version, pip is
    told which, and then may only take wheels (pip's rule for foreign targets); pure-
    Python packages ship universal wheels, so they install for any version.
    """
    command = [
        interpreter or sys.executable, "-m", "pip", "install",
        "--requirement", str(requirements),
        "--target", str(target),
        "--no-compile", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
    ]  # fmt: skip
    version = _PYTHON_RUNTIME.fullmatch(runtime)
    if interpreter is None and version and needs_other_python(runtime):
        command += ["--python-version", f"{version[1]}.{version[2]}", "--only-binary", ":all:"]
    return command


def install_requirements(
    requirements: Path,
    target: Path,
    runtime: str,
    on_line: Callable[[str], None],
    interpreter: str | None = None,
) -> None:
    """Run pip, passing each line it prints to `on_line`; raise with its output on failure."""
    with subprocess.Popen(
        pip_command(requirements, target, runtime, interpreter),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        output: list[str] = []
        for line in process.stdout:
            output.append(line)
            on_line(line.rstrip())
    if process.returncode != 0:
        raise RuntimeError("pip install failed:\n" + "".join(output[-40:]))


def build_package(
    source: Path,
    runtime: str,
    on_pip_line: Callable[[str], None] = lambda _line: None,
    on_file: Callable[[str], None] | None = None,
    interpreter: str | None = None,
) -> bytes:
    """The deployment zip of `source`, with its requirements.txt installed into it."""
    requirements = source / "requirements.txt"
    if not requirements.is_file():
        return build_zip([source], on_file)
    with tempfile.TemporaryDirectory(prefix="lamina-build-") as build:
        install_requirements(requirements, Path(build), runtime, on_pip_line, interpreter)
        # The function's own files win over a dependency's file of the same name.
        return build_zip([source, Path(build)], on_file)
