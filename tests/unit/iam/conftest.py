"""A directory over a temporary SQLite database, with a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lamina.iam import IamDirectory, IamStore, RootKey
from lamina.storage.database import open_database, sqlite_url

ACCOUNT = "000000000000"
ROOT = RootKey("LKIAROOTROOTROOTROOT", "root-secret")
START = 1_800_000_000.0


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Directories:
    """Opens directories over one database, as successive server starts would."""

    path: Path
    clock: FakeClock

    async def open(self) -> IamDirectory:
        engine = await open_database(sqlite_url(self.path), IamStore.metadata)
        self._engines.append(engine)
        directory = IamDirectory(IamStore(engine), ROOT, ACCOUNT, clock=self.clock)
        await directory.start()
        return directory

    def __post_init__(self) -> None:
        self._engines: list[object] = []

    async def close(self) -> None:
        for engine in self._engines:
            await engine.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def directories(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Directories]:
    opened = Directories(tmp_path / "iam.db", clock)
    yield opened
    await opened.close()


@pytest.fixture
async def directory(directories: Directories) -> IamDirectory:
    return await directories.open()
