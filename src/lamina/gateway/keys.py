"""Virtual keys: who may call the gateway, for which models, within which limits.

Keys come from config (static) and from the admin API (stored hashed in SQL). The
keyring holds every key in memory, by the SHA-256 of its secret, so authenticating a
request never touches the database.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from lamina.gateway.config import KeyConfig
from lamina.gateway.errors import ModelNotAllowed, Unauthenticated

ROOT_KEY_ID = "root"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class VirtualKey:
    id: str
    name: str
    models: frozenset[str] | None = None  # None: every model
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: str = "total"
    expires_at: float | None = None  # unix seconds
    metadata: Mapping[str, str] = field(default_factory=dict)
    revoked: bool = False
    source: str = "admin"  # "config" | "admin" | "root"

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def check_model(self, model: str) -> None:
        if not self.allows(model):
            raise ModelNotAllowed(f"key {self.name!r} may not use model {model!r}")


def from_config(entry: KeyConfig) -> VirtualKey:
    return VirtualKey(
        # A config key's identity is its name, so its spend survives restarts and
        # secret rotation in the config file.
        id=f"config:{entry.name}",
        name=entry.name,
        models=entry.models,
        rpm=entry.rpm,
        tpm=entry.tpm,
        max_parallel=entry.max_parallel,
        budget_usd=entry.budget_usd,
        budget_period=entry.budget_period,
        expires_at=entry.expires_at.timestamp() if entry.expires_at else None,
        metadata=entry.metadata,
        source="config",
    )


class Keyring:
    def __init__(
        self, clock: Callable[[], float], root: Callable[[str], bool] | None = None
    ) -> None:
        self._clock = clock  # wall clock, for expiry
        self._root = root
        self._config: dict[str, VirtualKey] = {}
        self._stored: dict[str, VirtualKey] = {}

    def use_config(self, entries: Iterable[KeyConfig]) -> None:
        self._config = {hash_secret(e.key): from_config(e) for e in entries}

    def put(self, key_hash: str, key: VirtualKey) -> None:
        self._stored = {h: k for h, k in self._stored.items() if k.id != key.id}
        self._stored[key_hash] = key

    def find(self, key_id: str) -> VirtualKey | None:
        return next(
            (k for k in (*self._stored.values(), *self._config.values()) if k.id == key_id), None
        )

    def authenticate(self, secret: str | None) -> VirtualKey:
        if not secret:
            raise Unauthenticated(
                "missing API key: send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'"
            )
        digest = hash_secret(secret)
        key = self._stored.get(digest) or self._config.get(digest)
        if key is None:
            if self._root is not None and self._root(secret):
                return VirtualKey(id=ROOT_KEY_ID, name="root", source="root")
            raise Unauthenticated("invalid API key")
        if key.revoked:
            raise Unauthenticated(f"API key {key.name!r} has been revoked")
        if key.expires_at is not None and self._clock() >= key.expires_at:
            raise Unauthenticated(f"API key {key.name!r} has expired")
        return key


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
