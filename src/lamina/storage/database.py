"""Open the SQL database lamina keeps its state in.

SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk before lamina
acknowledges anything written in it, and readers never block the single writer.
A database of records nobody is answered about (function logs) may open with
`durable=False` (`synchronous=NORMAL`): a commit survives lamina's crash but not the
machine's power loss, and costs no fsync — measured ~40% of the CPU of writing a warm
invocation's log lines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _sqlite_pragmas(synchronous: str) -> Callable[[Any, Any], None]:
    def apply(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return apply


async def open_database(url: str, *metadata: MetaData, durable: bool = True) -> AsyncEngine:
    """Create the engine and every table of `metadata` that does not exist yet."""
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        pragmas = _sqlite_pragmas("FULL" if durable else "NORMAL")
        event.listen(engine.sync_engine, "connect", pragmas)
    async with engine.begin() as conn:
        for meta in metadata:
            await conn.run_sync(meta.create_all)
    return engine
