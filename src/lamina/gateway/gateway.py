"""The gateway as lamina's server sees it: start, routes, close.

`Gateway.start` builds everything from the `gateway:` mapping — tables, keys, spend,
the shared upstream client, the accounting writer — and `app()` is the ASGI app of its
endpoints, served at the root of lamina's app (/v1/..., /gateway/...).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import BaseRoute

from lamina.gateway.api.admin import admin_routes
from lamina.gateway.api.anthropic import anthropic_routes
from lamina.gateway.api.app import GatewayApp
from lamina.gateway.api.openai import openai_routes
from lamina.gateway.api.prompts import prompt_routes
from lamina.gateway.config import ConfigError, parse_config
from lamina.gateway.function_keys import (
    FunctionGrant,
    function_environment,
    function_key,
    function_secret,
)
from lamina.gateway.http1 import HTTP1Client
from lamina.gateway.keys import Keyring, hash_secret
from lamina.gateway.keystore import KeyStore
from lamina.gateway.prompts import PromptStore
from lamina.gateway.service import Clocks, GatewayService
from lamina.gateway.spend import SpendLedger
from lamina.gateway.tables import Tables, gateway_tables
from lamina.gateway.telemetry import Telemetry
from lamina.gateway.upstream import Upstream
from lamina.gateway.usage import UsageWriter

RootSecret = Callable[[str], str | None]
CONFIG_POLL_S = 2.0
_NO_ENV: Mapping[str, str] = MappingProxyType({})


class Gateway:
    def __init__(self, service: GatewayService, store: KeyStore, writer: UsageWriter,
                 upstream: Upstream, tables: Tables, engine: AsyncEngine,
                 root_check: Callable[[str], bool], config_file: Path | None,
                 env: Mapping[str, str], signing_key: bytes) -> None:
        self.service = service
        self.store = store
        self._writer = writer
        self._upstream = upstream
        self._tables = tables
        self._engine = engine
        self._root_check = root_check
        self._config_file = config_file
        self._env = env
        self._signing_key = signing_key
        self._log = logging.getLogger("lamina.gateway")
        self._config_mtime = self._mtime()
        self._watcher: asyncio.Task[None] | None = None
        if config_file is not None:
            self._watcher = asyncio.create_task(self._watch(), name="gateway-config-watch")

    @classmethod
    async def start(cls, config: Mapping[str, Any], engine: AsyncEngine,
                    root_secret: RootSecret, config_file: Path | None, *,
                    env: Mapping[str, str] = _NO_ENV,
                    root_access_key_id: str | None = None,
                    clocks: Clocks | None = None,
                    http_client: HTTP1Client | None = None,
                    rng: random.Random | None = None) -> Gateway:
        """`env` is what `${NAME}` in the config is replaced from; `root_access_key_id`
        lets the root secret alone (`Authorization: Bearer SECRET`) authenticate."""
        parsed = parse_config(config, env)
        clocks = clocks or Clocks()
        tables = gateway_tables()
        async with engine.begin() as conn:
            await conn.run_sync(tables.metadata.create_all)
        root_check = _root_checker(root_secret, root_access_key_id)
        keyring = Keyring(clocks.wall, root_check)
        store = KeyStore(engine, tables, keyring, clocks.wall)
        await store.load()
        ledger = SpendLedger(clocks.wall)
        await ledger.load(engine, tables)
        prompt_store = PromptStore(engine, tables, clocks.wall)
        await prompt_store.load()
        upstream = Upstream(http_client)
        # Metrics always; spans when an OTLP endpoint is configured (in the config's
        # telemetry block or the standard OTEL_* variables).
        telemetry = Telemetry.start(parsed.telemetry, env)
        writer = UsageWriter(engine, tables, observers=[telemetry])
        writer.start()
        service = GatewayService(parsed, keyring=keyring, ledger=ledger, upstream=upstream,
                                 writer=writer, clocks=clocks, rng=rng or random.Random(),
                                 sleep=clocks.sleep or asyncio.sleep,
                                 prompt_store=prompt_store, telemetry=telemetry)
        root = root_secret(root_access_key_id) if root_access_key_id else None
        # Function keys are derived from the root secret so they survive restarts;
        # without one they last as long as this process.
        signing_key = root.encode() if root else secrets.token_bytes(32)
        return cls(service, store, writer, upstream, tables, engine, root_check,
                   config_file, env, signing_key)

    def routes(self) -> list[BaseRoute]:
        return [*openai_routes(self.service), *anthropic_routes(self.service),
                *prompt_routes(self.service), *admin_routes(self)]

    def app(self) -> GatewayApp:
        """The endpoints as one ASGI app (the model calls dispatched without Starlette's
        middleware, api/app.py)."""
        return GatewayApp(self.routes())

    def function_environment(self, grant: FunctionGrant, endpoint: str) -> dict[str, str]:
        """Register the function's own key (idempotent) and return the environment
        variables that point the openai and anthropic SDKs at lamina with it."""
        secret = function_secret(self._signing_key, grant.function)
        self.service.keyring.put(hash_secret(secret), function_key(grant))
        return function_environment(endpoint, secret)

    def is_root(self, secret: str | None) -> bool:
        return bool(secret) and self._root_check(secret or "")

    async def reload(self) -> None:
        """Re-read the config file and swap the configuration in; raises ConfigError
        (and keeps the running configuration) when the new one is invalid."""
        if self._config_file is None:
            raise ConfigError("lamina was started without --config; nothing to reload")
        raw = await asyncio.to_thread(self._config_file.read_text)
        document = yaml.safe_load(raw) or {}
        if not isinstance(document, dict):
            raise ConfigError(f"{self._config_file} must hold a YAML mapping")
        self.service.reconfigure(parse_config(document.get("gateway") or {}, self._env))

    def _mtime(self) -> float | None:
        try:
            return self._config_file.stat().st_mtime if self._config_file else None
        except OSError:
            return None

    async def reload_if_changed(self) -> bool:
        """Reload when the config file's mtime moved; an invalid file is logged and
        the running configuration kept."""
        mtime = self._mtime()
        if mtime is None or mtime == self._config_mtime:
            return False
        self._config_mtime = mtime
        try:
            await self.reload()
        except ConfigError as exc:
            self._log.error("gateway config %s not reloaded: %s", self._config_file,
                            exc.message)
            return False
        self._log.info("gateway config %s reloaded", self._config_file)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CONFIG_POLL_S)
            await self.reload_if_changed()

    async def drain(self) -> None:
        """Wait until every call so far is accounted in SQL (tests, shutdown)."""
        await self._writer.drain()

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def tables(self) -> Tables:
        return self._tables

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._writer.close()
        await self._upstream.close()


def _root_checker(root_secret: RootSecret, root_id: str | None) -> Callable[[str], bool]:
    def check(presented: str) -> bool:
        # "ACCESS_KEY_ID:SECRET" names the key; a bare secret needs the id configured.
        key_id, sep, secret = presented.partition(":")
        if not sep:
            key_id, secret = root_id or "", presented
        if not key_id:
            return False
        expected = root_secret(key_id)
        return expected is not None and hmac.compare_digest(expected.encode(),
                                                            secret.encode())
    return check
