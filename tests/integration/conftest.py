"""Integration fixtures: real `lamina serve` processes driven by real clients."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import LaminaServer


@pytest.fixture(scope="session")
def lamina_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    server = LaminaServer(tmp_path_factory.mktemp("lamina") / "data").start()
    yield server
    server.stop()


@pytest.fixture()
def fresh_server(tmp_path: Path) -> Iterator[LaminaServer]:
    """A server of the test's own, for restarts and crashes."""
    server = LaminaServer(tmp_path / "data")
    yield server
    server.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def lambda_client(lamina_server: LaminaServer) -> Any:
    return lamina_server.client("lambda")
