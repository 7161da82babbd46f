"""Virtual keys made through the admin API: stored in SQL (the secret only as its
SHA-256), mirrored into the keyring so requests are authenticated from memory."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.errors import ResourceNotFound
from lamina.gateway.errors import InvalidGatewayRequest
from lamina.gateway.keys import Keyring, VirtualKey, hash_secret, key_fields, parse_key
from lamina.gateway.tables import Tables


def key_spec(body: Mapping[str, Any]) -> VirtualKey:
    """A key to create, from an admin API body (its id is given on creation)."""
    return parse_key(body, refuse=InvalidGatewayRequest)


def new_secret() -> str:
    return "lk-" + secrets.token_urlsafe(32)


class KeyStore:
    def __init__(
        self, engine: AsyncEngine, tables: Tables, keyring: Keyring, clock: Callable[[], float]
    ) -> None:
        self._engine = engine
        self._table = tables.keys
        self._keyring = keyring
        self._clock = clock

    @staticmethod
    def _key(row: Any) -> VirtualKey:
        return VirtualKey(
            id=row.id,
            name=row.name,
            models=frozenset(row.models) if row.models is not None else None,
            rpm=row.rpm,
            tpm=row.tpm,
            max_parallel=row.max_parallel,
            budget_usd=row.budget_usd,
            budget_period=row.budget_period,
            expires_at=row.expires_at,
            metadata=dict(row.metadata or {}),
            revoked=bool(row.revoked),
            source="admin",
        )

    async def load(self) -> None:
        async with self._engine.connect() as conn:
            for row in await conn.execute(select(self._table)):
                self._keyring.put(row.key_hash, self._key(row))

    async def list(self) -> list[VirtualKey]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(self._table).order_by(self._table.c.created_at))
            return [self._key(row) for row in rows]

    async def get(self, key_id: str) -> VirtualKey:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(self._table).where(self._table.c.id == key_id))
            ).first()
        if row is None:
            raise ResourceNotFound(f"no key with id {key_id!r}")
        return self._key(row)

    async def create(self, spec: VirtualKey) -> tuple[VirtualKey, str]:
        secret = new_secret()
        key = replace(spec, id="key_" + secrets.token_hex(8), source="admin")
        async with self._engine.begin() as conn:
            await conn.execute(
                self._table.insert().values(
                    key_hash=hash_secret(secret), created_at=self._clock(), **key_fields(key)
                )
            )
        self._keyring.put(hash_secret(secret), key)
        return key, secret

    async def rotate(self, key_id: str) -> tuple[VirtualKey, str]:
        key = await self.get(key_id)
        secret = new_secret()
        async with self._engine.begin() as conn:
            await conn.execute(
                update(self._table)
                .where(self._table.c.id == key_id)
                .values(key_hash=hash_secret(secret))
            )
        self._keyring.put(hash_secret(secret), key)
        return key, secret

    async def revoke(self, key_id: str) -> VirtualKey:
        await self.get(key_id)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(self._table).where(self._table.c.id == key_id).values(revoked=True)
            )
            row = (await conn.execute(select(self._table).where(self._table.c.id == key_id))).one()
        key = replace(self._key(row), revoked=True)
        self._keyring.put(row.key_hash, key)
        return key
