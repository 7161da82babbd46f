"""Fixtures for the built-in Python runtime's tests (harness: python_runtime_harness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.runtimes.python_runtime_harness import Launcher, interpreters


@pytest.fixture(params=interpreters())
def python(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def launcher(python: str, tmp_path: Path) -> Iterator[Launcher]:
    task_root = tmp_path / "task"
    task_root.mkdir()
    launched = Launcher(python, task_root)
    yield launched
    launched.close()
