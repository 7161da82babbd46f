"""A real FunctionRegistry over a temporary SQLite database and an in-memory blob store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.unit.functions.support import (
    FixedClock,
    MemoryBlobs,
    MemoryRepository,
    OpenPlatform,
    Platform,
    arn,
)

from lamina.functions.aliases import FunctionSettings
from lamina.functions.registry import FunctionRegistry
from lamina.invocation.concurrency import Concurrency
from lamina.storage.database import open_database, sqlite_url
from lamina.storage.functions import FunctionRepository, metadata


@pytest.fixture
def blobs() -> MemoryBlobs:
    return MemoryBlobs()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
async def open_platform(
    tmp_path: Path, blobs: MemoryBlobs, clock: FixedClock
) -> AsyncIterator[OpenPlatform]:
    """Opens everything as a fresh process would: a new engine, then `load()` from SQL.

    Each call after the first is a "restart" over the same database and code root."""
    opened: list[tuple[FunctionRegistry, AsyncEngine]] = []

    async def open_one() -> Platform:
        engine = await open_database(sqlite_url(tmp_path / "lamina.db"), metadata)
        repo = FunctionRepository(engine)
        registry = FunctionRegistry(repo, blobs, tmp_path / "code", arn, clock)
        await registry.load()
        concurrency = Concurrency(1000)
        settings = FunctionSettings(registry, repo, concurrency, arn, clock)
        settings.load()
        opened.append((registry, engine))
        return Platform(registry, settings, repo, concurrency)

    yield open_one
    for registry, engine in opened:
        await registry.close()
        await engine.dispose()


@pytest.fixture
async def platform(open_platform: OpenPlatform) -> Platform:
    return await open_platform()


@pytest.fixture
async def memory_platform(
    tmp_path: Path, blobs: MemoryBlobs, clock: FixedClock
) -> AsyncIterator[Platform]:
    """The same, over an in-memory repository: for tests where SQL adds only time."""
    repo = cast(FunctionRepository, MemoryRepository())
    registry = FunctionRegistry(repo, blobs, tmp_path / "code", arn, clock)
    concurrency = Concurrency(1000)
    yield Platform(
        registry, FunctionSettings(registry, repo, concurrency, arn, clock), repo, concurrency
    )
    await registry.close()


@pytest.fixture
def registry(memory_platform: Platform) -> FunctionRegistry:
    return memory_platform.registry
