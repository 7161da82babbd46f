"""Virtual keys: who may call the gateway, for which models, within which limits.

Keys come from config (static), from the admin API (stored hashed in SQL) and from
function grants (function_keys.py); all are a `VirtualKey`, and config entries and
admin bodies are read by one parser, `parse_key`. The keyring holds every key in
memory, by the SHA-256 of its secret, so authenticating a request never touches the
database.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lamina.gateway.errors import ModelNotAllowed, Unauthenticated

ROOT_KEY_ID = "root"
BUDGET_PERIODS = frozenset({"total", "day", "month"})


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
    source: str = "admin"  # "config" | "admin" | "function" | "root"

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def check_model(self, model: str) -> None:
        if not self.allows(model):
            raise ModelNotAllowed(f"key {self.name!r} may not use model {model!r}")


def key_fields(key: VirtualKey) -> dict[str, Any]:
    """The key as plain values: its SQL row (less hash and creation time) and, with
    its spend and source, the admin API's view of it."""
    return {
        "id": key.id,
        "name": key.name,
        "models": sorted(key.models) if key.models is not None else None,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "max_parallel": key.max_parallel,
        "budget_usd": key.budget_usd,
        "budget_period": key.budget_period,
        "expires_at": key.expires_at,
        "metadata": dict(key.metadata),
        "revoked": key.revoked,
    }


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """A static key of the config file: its secret and the key it stands for."""

    secret: str
    key: VirtualKey


def parse_key(entry: Mapping[str, Any], *, refuse: Callable[[str], Exception],
              where: str = "", source: str = "admin") -> VirtualKey:  # fmt: skip
    """A key (without its id) from a config entry or an admin API body. `refuse`
    makes the error (ConfigError, InvalidGatewayRequest); `where` prefixes the member
    names in messages (`gateway.keys[0]`), else they are quoted."""

    def at(member: str) -> str:
        return f"{where}.{member}" if where else repr(member)

    def count(member: str, kinds: tuple[type[int] | type[float], ...] = (int,)) -> Any:
        value: Any = entry.get(member)
        if value is not None and (
            not isinstance(value, kinds) or isinstance(value, bool) or value < 0
        ):
            noun = "integer" if kinds == (int,) else "number"
            raise refuse(f"{at(member)} must be a non-negative {noun}")
        return value

    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise refuse(f"{at('name')} is required (a non-empty string)")
    period = str(entry.get("budget_period", "total"))
    if period not in BUDGET_PERIODS:
        raise refuse(f"{at('budget_period')} must be one of {sorted(BUDGET_PERIODS)}")
    models = entry.get("models")
    if models is not None and not (
        isinstance(models, list) and all(isinstance(m, str) for m in models)
    ):
        raise refuse(f"{at('models')} must be a list of model names")
    metadata = entry.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise refuse(f"{at('metadata')} must be a mapping")
    expires = entry.get("expires_at")
    if isinstance(expires, str):  # ISO 8601 (YAML may have made it a datetime already)
        try:
            expires = datetime.fromisoformat(expires)
        except ValueError as exc:
            raise refuse(f"{at('expires_at')} must be ISO 8601 or unix seconds") from exc
    budget = count("budget_usd", (int, float))
    return VirtualKey(
        id="",
        name=name,
        models=frozenset(models) if models is not None else None,
        rpm=count("rpm"),
        tpm=count("tpm"),
        max_parallel=count("max_parallel"),
        budget_usd=float(budget) if budget is not None else None,
        budget_period=period,
        expires_at=(expires.timestamp() if isinstance(expires, datetime)
                    else count("expires_at", (int, float))),
        metadata={str(k): str(v) for k, v in metadata.items()},
        source=source,
    )  # fmt: skip


class Keyring:
    def __init__(
        self, clock: Callable[[], float], root: Callable[[str], bool] | None = None
    ) -> None:
        self._clock = clock  # wall clock, for expiry
        self._root = root
        self._config: dict[str, VirtualKey] = {}
        self._stored: dict[str, VirtualKey] = {}

    def use_config(self, entries: Iterable[KeyConfig]) -> None:
        self._config = {hash_secret(e.secret): e.key for e in entries}

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
