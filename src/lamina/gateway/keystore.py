"""Virtual keys made through the admin API: stored in SQL (the secret only as its
SHA-256), mirrored into the keyring so requests are authenticated from memory."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.errors import ResourceNotFound
from lamina.gateway.config import BUDGET_PERIODS
from lamina.gateway.errors import InvalidGatewayRequest
from lamina.gateway.keys import Keyring, VirtualKey, hash_secret
from lamina.gateway.tables import Tables


@dataclass(frozen=True, slots=True)
class KeySpec:
    name: str
    models: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: str = "total"
    expires_at: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> KeySpec:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidGatewayRequest("'name' is required")
        period = str(body.get("budget_period", "total"))
        if period not in BUDGET_PERIODS:
            raise InvalidGatewayRequest(f"'budget_period' must be one of {sorted(BUDGET_PERIODS)}")
        models = body.get("models")
        if models is not None and not (
            isinstance(models, list) and all(isinstance(m, str) for m in models)
        ):
            raise InvalidGatewayRequest("'models' must be a list of model names")

        def number(name: str) -> Any:
            value = body.get(name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise InvalidGatewayRequest(f"'{name}' must be a non-negative number")
            return value

        expires = body.get("expires_at")
        if isinstance(expires, str):  # ISO 8601 as well as unix seconds
            try:
                expires = datetime.fromisoformat(expires).timestamp()
            except ValueError as exc:
                raise InvalidGatewayRequest(
                    "'expires_at' must be ISO 8601 or unix seconds"
                ) from exc
        elif expires is not None:
            expires = number("expires_at")
        return cls(
            name=name,
            models=frozenset(models) if models is not None else None,
            rpm=number("rpm"),
            tpm=number("tpm"),
            max_parallel=number("max_parallel"),
            budget_usd=number("budget_usd"),
            budget_period=period,
            expires_at=expires,
            metadata={str(k): str(v) for k, v in (body.get("metadata") or {}).items()},
        )


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

    async def create(self, spec: KeySpec) -> tuple[VirtualKey, str]:
        secret = new_secret()
        key = VirtualKey(
            id="key_" + secrets.token_hex(8),
            name=spec.name,
            models=spec.models,
            rpm=spec.rpm,
            tpm=spec.tpm,
            max_parallel=spec.max_parallel,
            budget_usd=spec.budget_usd,
            budget_period=spec.budget_period,
            expires_at=spec.expires_at,
            metadata=spec.metadata,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                self._table.insert().values(
                    id=key.id,
                    name=key.name,
                    key_hash=hash_secret(secret),
                    models=sorted(key.models) if key.models is not None else None,
                    rpm=key.rpm,
                    tpm=key.tpm,
                    max_parallel=key.max_parallel,
                    budget_usd=key.budget_usd,
                    budget_period=key.budget_period,
                    expires_at=key.expires_at,
                    metadata=dict(key.metadata),
                    revoked=False,
                    created_at=self._clock(),
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
