"""SQL persistence of functions, versions, aliases and their settings.

Rows hold JSON documents of the models: the in-memory registry is the read path,
so the schema only has to load everything at start and write through on change.
Every write also notes the function's name in a change log, in the same transaction,
so that a serving process that did not write it reads again only what changed.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lamina.functions.model import (
    Alias,
    EventInvokeConfig,
    Function,
    FunctionConfig,
    ProvisionedConfig,
    State,
    UpdateStatus,
)

metadata = MetaData()

functions_table = Table(
    "functions",
    metadata,
    Column("name", String, primary_key=True),
    Column("latest", LargeBinary, nullable=False),
    Column("reserved_concurrency", Integer, nullable=True),
    Column("next_version", Integer, nullable=False),
    Column("created", Float, nullable=False),
)
versions_table = Table(
    "function_versions",
    metadata,
    Column("name", String, primary_key=True),
    Column("version", String, primary_key=True),
    Column("config", LargeBinary, nullable=False),
)


def _documents(name: str, key: str) -> Table:
    """A table of JSON documents per (function, key): aliases, configs, policies."""
    return Table(
        name,
        metadata,
        Column("name", String, primary_key=True),
        Column(key, String, primary_key=True),
        Column("data", LargeBinary, nullable=False),
    )


aliases_table = _documents("function_aliases", "alias")
invoke_configs_table = _documents("function_event_invoke_configs", "qualifier")
provisioned_table = _documents("function_provisioned_concurrency", "qualifier")
policies_table = _documents("function_policies", "qualifier")  # "" for the function itself
changes_table = Table(
    "function_changes",
    metadata,
    Column("seq", Integer, primary_key=True),
    Column("name", String, nullable=False),
    sqlite_autoincrement=True,  # never reused: a reader's mark means one point in time
)
# Changes kept for readers behind; one further behind reads every function again.
CHANGES_KEPT = 4096


def _dump(obj: Any) -> bytes:
    return orjson.dumps(dataclasses.asdict(obj))


class EnvironmentSealer(Protocol):
    """Encrypts a function's environment variables at rest (secrets.EnvironmentCipher)."""

    async def seal(
        self, function_name: str, variables: Mapping[str, str], kms_key_arn: str | None = None
    ) -> bytes: ...
    async def open(self, function_name: str, blob: bytes) -> dict[str, str]: ...


def config_from_json(raw: bytes) -> FunctionConfig:
    data = orjson.loads(raw)
    data.pop("environment_sealed", None)
    data["state"] = State(data["state"])
    data["last_update_status"] = UpdateStatus(data["last_update_status"])
    data["architectures"] = tuple(data["architectures"])
    data["vpc_subnets"] = tuple(data.get("vpc_subnets") or ())
    data["vpc_security_groups"] = tuple(data.get("vpc_security_groups") or ())
    return FunctionConfig(**data)


class FunctionRepository:
    def __init__(self, engine: AsyncEngine, sealer: EnvironmentSealer | None = None) -> None:
        self._engine = engine
        self._sealer = sealer
        # Called after each committed write: other serving processes keep the functions
        # in memory and reload them when told (serving/shared.py's generation).
        self.on_commit: Callable[[], object] | None = None

    @asynccontextmanager
    async def _transaction(self, name: str) -> AsyncIterator[AsyncConnection]:
        """A write to function `name`'s rows, noted in the change log as it commits."""
        async with self._engine.begin() as conn:
            yield conn
            noted = await conn.execute(changes_table.insert().values(name=name))
            seq = int(noted.lastrowid or 0)
            if seq % 256 == 0:  # now and then, forget the oldest
                await conn.execute(
                    delete(changes_table).where(changes_table.c.seq <= seq - CHANGES_KEPT)
                )
        if self.on_commit is not None:
            self.on_commit()  # after the commit: a reader told now must find the change

    async def _config_bytes(self, config: FunctionConfig) -> bytes:
        """A config as stored: its environment variables sealed, never in plain text."""
        if self._sealer is None or not config.environment:
            return _dump(config)
        data = dataclasses.asdict(config)
        blob = await self._sealer.seal(config.name, config.environment, config.kms_key_arn or None)
        data["environment"] = {}
        data["environment_sealed"] = base64.b64encode(blob).decode()
        return orjson.dumps(data)

    async def _config(self, raw: bytes) -> FunctionConfig:
        sealed = orjson.loads(raw).get("environment_sealed")
        config = config_from_json(raw)
        if sealed:
            if self._sealer is None:
                raise RuntimeError(
                    "function environment variables are sealed but no key is configured"
                )
            variables = await self._sealer.open(config.name, base64.b64decode(sealed))
            config = dataclasses.replace(config, environment=variables)
        return config

    async def load_all(self) -> dict[str, Function]:
        return await self._load(None)

    async def load_functions(self, names: Collection[str]) -> dict[str, Function]:
        """The named functions that exist: one query per table, however many are named."""
        return await self._load(names) if names else {}

    async def _load(self, names: Collection[str] | None) -> dict[str, Function]:
        """Every function, or the named ones."""

        def rows(table: Table) -> Any:
            query = select(table)
            return query if names is None else query.where(table.c.name.in_(names))

        async with self._engine.connect() as conn:
            found: dict[str, Function] = {}
            for row in await conn.execute(rows(functions_table)):
                found[row.name] = Function(
                    latest=await self._config(row.latest),
                    reserved_concurrency=row.reserved_concurrency,
                    next_version=row.next_version,
                    created=row.created,
                )
            for row in await conn.execute(rows(versions_table)):
                if row.name in found:
                    found[row.name].versions[row.version] = await self._config(row.config)
            for row in await conn.execute(rows(aliases_table)):
                if row.name in found:
                    data = orjson.loads(row.data)
                    found[row.name].aliases[row.alias] = Alias(**data)
            for row in await conn.execute(rows(invoke_configs_table)):
                if row.name in found:
                    found[row.name].event_invoke_configs[row.qualifier] = EventInvokeConfig(
                        **orjson.loads(row.data)
                    )
            for row in await conn.execute(rows(provisioned_table)):
                if row.name in found:
                    found[row.name].provisioned[row.qualifier] = ProvisionedConfig(
                        **orjson.loads(row.data)
                    )
        return found

    async def change_mark(self) -> int:
        """The newest change's number (0 before any): what a full read has seen, at least."""
        async with self._engine.connect() as conn:
            newest = (await conn.execute(select(func.max(changes_table.c.seq)))).scalar()
        return int(newest or 0)

    async def changed_since(self, mark: int) -> tuple[int, set[str] | None]:
        """The newest change's number and the names written after `mark`; None for the
        names when the log no longer reaches back to `mark` (read everything again)."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(changes_table.c.seq, changes_table.c.name)
                    .where(changes_table.c.seq > mark)
                    .order_by(changes_table.c.seq)
                )
            ).all()
        if not rows:
            return mark, set()
        if rows[0].seq != mark + 1:  # numbers never skip: the ones between were forgotten
            return int(rows[-1].seq), None
        return int(rows[-1].seq), {row.name for row in rows}

    async def save_function(self, fn: Function, version: FunctionConfig | None = None) -> None:
        """Write the function row (and, in the same transaction, a new version)."""
        latest = await self._config_bytes(fn.latest)
        sealed_version = await self._config_bytes(version) if version is not None else b""
        row = {
            "name": fn.name,
            "latest": latest,
            "reserved_concurrency": fn.reserved_concurrency,
            "next_version": fn.next_version,
            "created": fn.created,
        }
        stmt = sqlite_insert(functions_table).values(**row)
        stmt = stmt.on_conflict_do_update(index_elements=["name"], set_=row)
        async with self._transaction(fn.name) as conn:
            await conn.execute(stmt)
            if version is not None:
                await conn.execute(
                    versions_table.insert().values(
                        name=fn.name, version=version.version, config=sealed_version
                    )
                )

    async def save_version(self, config: FunctionConfig) -> None:
        stored = await self._config_bytes(config)
        async with self._transaction(config.name) as conn:
            await conn.execute(
                versions_table.update()
                .where(versions_table.c.name == config.name)
                .where(versions_table.c.version == config.version)
                .values(config=stored)
            )

    async def delete_function(self, name: str) -> None:
        async with self._transaction(name) as conn:
            tables = (
                versions_table, aliases_table, invoke_configs_table, provisioned_table,
                policies_table,
            )  # fmt: skip
            for table in (*tables, functions_table):
                await conn.execute(delete(table).where(table.c.name == name))

    async def delete_version(self, name: str, version: str) -> None:
        async with self._transaction(name) as conn:
            await conn.execute(
                delete(versions_table)
                .where(versions_table.c.name == name)
                .where(versions_table.c.version == version)
            )

    async def save_alias(self, alias: Alias) -> None:
        await self._upsert(aliases_table, "alias", alias.function, alias.name, _dump(alias))

    async def delete_alias(self, function: str, alias: str) -> None:
        await self._remove(aliases_table, "alias", function, alias)

    async def save_invoke_config(
        self, function: str, qualifier: str, config: EventInvokeConfig
    ) -> None:
        await self._upsert(invoke_configs_table, "qualifier", function, qualifier, _dump(config))

    async def delete_invoke_config(self, function: str, qualifier: str) -> None:
        await self._remove(invoke_configs_table, "qualifier", function, qualifier)

    async def save_provisioned(
        self, function: str, qualifier: str, config: ProvisionedConfig
    ) -> None:
        await self._upsert(provisioned_table, "qualifier", function, qualifier, _dump(config))

    async def delete_provisioned(self, function: str, qualifier: str) -> None:
        await self._remove(provisioned_table, "qualifier", function, qualifier)

    async def save_policy(self, function: str, qualifier: str, document: str) -> None:
        """Write a function's resource policy; an empty document deletes it."""
        if document:
            await self._upsert(policies_table, "qualifier", function, qualifier, document.encode())
        else:
            await self._remove(policies_table, "qualifier", function, qualifier)

    async def load_policies(self) -> dict[tuple[str, str], dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(policies_table))
            return {(r.name, r.qualifier): orjson.loads(r.data) for r in rows}

    async def _remove(self, table: Table, key: str, name: str, second: str) -> None:
        async with self._transaction(name) as conn:
            await conn.execute(
                delete(table).where(table.c.name == name).where(table.c[key] == second)
            )

    async def _upsert(self, table: Table, key: str, name: str, second: str, data: bytes) -> None:
        stmt = sqlite_insert(table).values(**{"name": name, key: second, "data": data})
        stmt = stmt.on_conflict_do_update(index_elements=["name", key], set_={"data": data})
        async with self._transaction(name) as conn:
            await conn.execute(stmt)
