"""The gateway under test: served by uvicorn from `Gateway.app()` on loopback, with
mock providers beside it, driven by the official openai and anthropic SDKs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
import yaml

from lamina.gateway import Gateway
from lamina.storage.database import open_database, sqlite_url
from tests.integration.gateway.gateway_mocks import (
    MockAnthropic,
    MockBedrock,
    MockCohere,
    MockGemini,
    MockOpenAI,
    serve,
    serve_all,
)
from tests.integration.support import LaminaServer

ROOT_ID = "LAMINAROOTKEY"
ROOT_SECRET = "root-secret-for-tests"
APP_KEY = "sk-lamina-app"
OTHER_KEY = "sk-lamina-other"


@dataclass
class Mocks:
    openai: MockOpenAI
    openai_url: str
    anthropic: MockAnthropic
    anthropic_url: str
    gemini: MockGemini
    gemini_url: str
    cohere: MockCohere
    cohere_url: str
    bedrock: MockBedrock
    bedrock_url: str


@contextlib.asynccontextmanager
async def running_mocks() -> AsyncIterator[Mocks]:
    oa, an = MockOpenAI("openai-mock"), MockAnthropic("anthropic-mock")
    gm, co = MockGemini("gemini-mock"), MockCohere("cohere-mock")
    br = MockBedrock("bedrock-mock")
    async with serve_all(oa.app(), an.app(), gm.app(), co.app(), br.app()) as urls:
        oa_url, an_url, gm_url, co_url, br_url = urls
        yield Mocks(oa, oa_url, an, an_url, gm, gm_url, co, co_url, br, br_url)


def base_config(m: Mocks, **model_options: Any) -> dict[str, Any]:
    def model(name: str, provider: str, upstream: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "routes": [{"provider": provider, "model": upstream}],
                "retries": 0, "backoff_s": 0, **model_options, **extra}

    return {
        "providers": [
            {"name": "openai-main", "type": "openai", "base_url": f"{m.openai_url}/v1",
             "api_key": "${OPENAI_API_KEY}"},
            {"name": "openai-responses", "type": "openai", "base_url": f"{m.openai_url}/v1",
             "api_key": "${OPENAI_API_KEY}", "responses_api": True},
            {"name": "claude", "type": "anthropic", "base_url": m.anthropic_url,
             "api_key": "${ANTHROPIC_API_KEY}"},
            {"name": "google", "type": "gemini", "base_url": f"{m.gemini_url}/v1beta",
             "api_key": "gm-key"},
            {"name": "cohere", "type": "cohere", "base_url": m.cohere_url, "api_key": "co-key"},
            {"name": "aws", "type": "bedrock", "base_url": m.bedrock_url, "region": "eu-west-1",
             "aws_access_key_id": "AKIDMOCK", "aws_secret_access_key": "mock-secret"},
        ],
        "models": [
            model("gpt", "openai-main", "gpt-4o-mini"),
            model("claude", "claude", "claude-3-5-haiku-latest"),
            model("embed", "openai-main", "text-embedding-3-small"),
            model("gemini", "google", "gemini-2.0-flash"),
            model("gemini-embed", "google", "text-embedding-004"),
            model("command", "cohere", "command-a-03-2025"),
            model("cohere-embed", "cohere", "embed-v4.0"),
            model("nova", "aws", "amazon.nova-lite-v1:0"),
            model("gpt-native", "openai-responses", "gpt-5-mini"),
        ],
        "keys": [
            {"key": "${APP_KEY}", "name": "app"},
            {"key": OTHER_KEY, "name": "other", "models": ["gpt"]},
        ],
    }


ENV = {"OPENAI_API_KEY": "sk-upstream-openai", "ANTHROPIC_API_KEY": "sk-upstream-anthropic",
       "APP_KEY": APP_KEY}


@dataclass
class Running:
    url: str
    gateway: Gateway
    clients: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = field(default_factory=list)

    def openai(self, key: str = APP_KEY) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)
        self.clients.append(client)
        return client

    def anthropic(self, key: str = APP_KEY) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


Launch = Callable[..., contextlib.AbstractAsyncContextManager[Running]]


@contextlib.asynccontextmanager
async def lamina_serving(tmp_path: Path, gateway: dict[str, Any],
                         extra_env: dict[str, str] | None = None) -> AsyncIterator[LaminaServer]:
    """A real `lamina serve --config FILE` with this `gateway:` block (and ENV); its
    log is printed when the body fails."""
    config_file = tmp_path / "lamina.yaml"
    config_file.write_text(yaml.safe_dump({"gateway": gateway}))
    (tmp_path / "data").mkdir()
    server = LaminaServer(tmp_path / "data", extra_env={**ENV, **(extra_env or {})},
                          args=["--config", str(config_file)])
    await asyncio.to_thread(server.start)
    try:
        yield server
    except BaseException:
        print(server.log_text())
        raise
    finally:
        await asyncio.to_thread(server.stop)


def launcher(tmp_path: Path) -> Launch:
    @contextlib.asynccontextmanager
    async def start(config: dict[str, Any], config_file: Path | None = None,
                    **options: Any) -> AsyncIterator[Running]:
        engine = await open_database(sqlite_url(tmp_path / "lamina.db"))
        gateway = await Gateway.start(
            config, engine, lambda key_id: ROOT_SECRET if key_id == ROOT_ID else None,
            config_file, env=ENV, root_access_key_id=ROOT_ID, **options)
        try:
            async with serve(gateway.app()) as url:
                running = Running(url, gateway)
                try:
                    yield running
                finally:
                    await running.close()
        finally:
            await gateway.close()
            await engine.dispose()

    return start
