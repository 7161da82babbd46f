"""Fixtures for the gateway's integration tests (helpers live in harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.gateway.harness import Launch, Mocks, launcher, running_mocks


@pytest.fixture
async def mocks() -> AsyncIterator[Mocks]:
    async with running_mocks() as m:
        yield m


@pytest.fixture
def launch(tmp_path: Path) -> Launch:
    return launcher(tmp_path)
