"""A real EventQueue on a temporary SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.unit.invocation.support import FakeClock, OpenQueue, RecordingQueue, Rows

from lamina.invocation.event_queue import metadata
from lamina.storage.database import open_database, sqlite_url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
async def open_queue(db_path: Path) -> AsyncIterator[OpenQueue]:
    """Opens a started queue as a fresh process would; later calls are "restarts"."""
    opened: list[tuple[RecordingQueue, AsyncEngine]] = []

    async def open_one() -> RecordingQueue:
        engine = await open_database(sqlite_url(db_path), metadata)
        queue = RecordingQueue(engine)
        queue.start()
        opened.append((queue, engine))
        return queue

    yield open_one
    for queue, engine in opened:
        await queue.close()
        await engine.dispose()


@pytest.fixture
async def queue(open_queue: OpenQueue) -> RecordingQueue:
    return await open_queue()


@pytest.fixture
def rows(db_path: Path) -> Rows:
    """What another process would read from the database file right now."""

    def read() -> list[tuple[object, ...]]:
        with sqlite3.connect(db_path) as conn:
            return conn.execute(
                "SELECT id, function, qualifier, payload, received_at, attempts, "
                "next_attempt_at FROM async_events ORDER BY received_at"
            ).fetchall()

    return read
