"""Prompt templates published as endpoints: `{{name}}` placeholders filled from the
request's variables, the result sent as the user message to the template's model."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.errors import ResourceNotFound
from lamina.gateway.config import PromptConfig
from lamina.gateway.errors import InvalidGatewayRequest
from lamina.gateway.tables import Tables

Versions = Mapping[str, tuple[PromptConfig, ...]]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(template: str) -> list[str]:
    return list(dict.fromkeys(_PLACEHOLDER.findall(template)))


def render(template: str, variables: Mapping[str, Any]) -> str:
    missing = [name for name in placeholders(template) if name not in variables]
    if missing:
        raise InvalidGatewayRequest(f"missing template variables: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), template)


def choose(prompts: Mapping[str, tuple[PromptConfig, ...]], name: str,
           version: int | None) -> PromptConfig:
    versions = prompts.get(name)
    if not versions:
        raise ResourceNotFound(f"no prompt template named {name!r}")
    if version is None:
        return versions[-1]
    for prompt in versions:
        if prompt.version == version:
            return prompt
    raise ResourceNotFound(f"prompt {name!r} has no version {version}")


def chat_request(prompt: PromptConfig, body: Mapping[str, Any], stream: bool) -> dict[str, Any]:
    variables = body.get("variables") or {}
    if not isinstance(variables, Mapping):
        raise InvalidGatewayRequest("'variables' must be an object")
    request: dict[str, Any] = {
        "model": prompt.model,
        "messages": [{"role": "user", "content": render(prompt.template, variables)}]}
    for name in ("temperature", "max_tokens", "top_p", "stop", "seed"):
        if body.get(name) is not None:
            request[name] = body[name]
    if stream:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    return request


def merged(configured: Versions, published: Versions) -> dict[str, tuple[PromptConfig, ...]]:
    """Every version of every template, from the config file and the admin API."""
    out: dict[str, tuple[PromptConfig, ...]] = {}
    for name in {*configured, *published}:
        versions = {v.version: v for v in configured.get(name, ())}
        versions.update({v.version: v for v in published.get(name, ())})
        out[name] = tuple(versions[n] for n in sorted(versions))
    return out


class PromptStore:
    """Template versions published at run time, kept in SQL; a new version never
    replaces an old one, so callers pinned to a version keep getting it."""

    def __init__(self, engine: AsyncEngine, tables: Tables,
                 clock: Callable[[], float]) -> None:
        self._engine = engine
        self._table = tables.prompts
        self._clock = clock
        self.published: dict[str, tuple[PromptConfig, ...]] = {}

    async def load(self) -> None:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(self._table).order_by(self._table.c.version))
            for row in rows:
                self._add(PromptConfig(row.name, row.model, row.template, row.version))

    def _add(self, prompt: PromptConfig) -> None:
        self.published[prompt.name] = (*self.published.get(prompt.name, ()), prompt)

    async def publish(self, name: str, model: str, template: str,
                      configured: Versions) -> PromptConfig:
        latest = [v.version for v in (*configured.get(name, ()),
                                      *self.published.get(name, ()))]
        prompt = PromptConfig(name, model, template, max(latest, default=0) + 1)
        async with self._engine.begin() as conn:
            await conn.execute(self._table.insert().values(
                name=name, version=prompt.version, model=model, template=template,
                created_at=self._clock()))
        self._add(prompt)
        return prompt
