"""Fixtures for the secrets engine: a fake clock and stores over a temporary SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.unit.secrets.support import FakeClock

from lamina.secrets import Envelope, KeyStore, MasterKey, SecretStore
from lamina.storage.database import open_database, sqlite_url

ACCOUNT = "000000000000"
REGION = "us-east-1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def master() -> MasterKey:
    return MasterKey(bytes(range(32)))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "lamina.db"


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(sqlite_url(db_path), KeyStore.metadata, SecretStore.metadata)
    yield engine
    await engine.dispose()


@pytest.fixture
def keys(engine: AsyncEngine, master: MasterKey, clock: FakeClock) -> KeyStore:
    return KeyStore(engine, master, ACCOUNT, clock)


@pytest.fixture
def envelope(master: MasterKey, keys: KeyStore) -> Envelope:
    return Envelope(master, keys)


@pytest.fixture
def secrets_store(engine: AsyncEngine, envelope: Envelope, clock: FakeClock) -> SecretStore:
    return SecretStore(engine, envelope, ACCOUNT, clock)
