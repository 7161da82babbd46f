"""Deployment packages: deterministic zips, skipped files, modes, requirements via pip."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import time
import zipfile
from pathlib import Path

import pytest

from lamina.cli.code_package import build_package, build_zip, pip_command, usable_pip


def make_function(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "app.py").write_text("def handler(event, context):\n    return event\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "data.json").write_text("{}")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "stale.pyc").write_bytes(b"x")
    bootstrap = root / "bootstrap"
    bootstrap.write_text("#!/bin/sh\n")
    bootstrap.chmod(0o755)
    return root


def test_zip_is_deterministic_and_skips_build_litter(tmp_path: Path) -> None:
    root = make_function(tmp_path / "fn")
    first = build_zip([root])
    later = time.time() + 1000
    os.utime(root / "app.py", (later, later))
    assert build_zip([root]) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["app.py", "bootstrap", "pkg/__init__.py", "pkg/data.json"]
        infos = {info.filename: info for info in archive.infolist()}
    assert infos["app.py"].date_time == (1980, 1, 1, 0, 0, 0)
    assert (infos["bootstrap"].external_attr >> 16) & 0o777 == 0o755
    assert (infos["app.py"].external_attr >> 16) & 0o777 == 0o644


def test_first_root_wins(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.py").write_text("mine")
    (tmp_path / "b" / "x.py").write_text("dependency's")
    (tmp_path / "b" / "y.py").write_text("dep")
    with zipfile.ZipFile(io.BytesIO(build_zip([tmp_path / "a", tmp_path / "b"]))) as archive:
        assert archive.read("x.py") == b"mine"
        assert archive.namelist() == ["x.py", "y.py"]


def test_pip_command_targets_the_runtime_version(tmp_path: Path) -> None:
    same = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    command = pip_command(tmp_path / "requirements.txt", tmp_path / "out", same)
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--python-version" not in command and "--target" in command
    other = pip_command(tmp_path / "r.txt", tmp_path / "out", "python3.99")
    assert other[other.index("--python-version") + 1] == "3.99"
    assert ":all:" in other
    assert "--python-version" not in pip_command(tmp_path / "r.txt", tmp_path, "provided.al2023")
    # With the runtime's own interpreter, pip needs no foreign-target flags.
    own = pip_command(tmp_path / "r.txt", tmp_path, "python3.99", "/opt/py399/bin/python")
    assert own[0] == "/opt/py399/bin/python" and "--python-version" not in own


def test_usable_pip() -> None:
    assert usable_pip(sys.executable)
    assert not usable_pip("/nonexistent/python")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel, so pip installs it without touching the network."""
    files = {
        "tinydep/__init__.py": b"VALUE = 42\n",
        "tinydep-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n",
        "tinydep-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [_record_line(name, data) for name, data in files.items()]
    record.append("tinydep-1.0.dist-info/RECORD,,")
    files["tinydep-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / "tinydep-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


@pytest.mark.timeout(120)
def test_requirements_are_installed_into_the_package(tmp_path: Path) -> None:
    root = tmp_path / "fn"
    root.mkdir()
    (root / "app.py").write_text("import tinydep\n")
    wheel = make_wheel(tmp_path)
    (root / "requirements.txt").write_text(f"{wheel}\n")
    lines: list[str] = []
    runtime = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    package = build_package(root, runtime, on_pip_line=lines.append)
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        names = archive.namelist()
    assert "app.py" in names and "requirements.txt" in names
    assert "tinydep/__init__.py" in names
    assert "tinydep-1.0.dist-info/METADATA" in names
    assert any("tinydep" in line for line in lines)


def test_failed_pip_reports_its_output(tmp_path: Path) -> None:
    root = tmp_path / "fn"
    root.mkdir()
    (root / "requirements.txt").write_text(f"{tmp_path / 'missing-1.0-py3-none-any.whl'}\n")
    with pytest.raises(RuntimeError, match="pip install failed"):
        build_package(root, "python3.12")
