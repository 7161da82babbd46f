"""Prompt templates published as endpoints: `{{name}}` placeholders filled from the
request's variables, the result sent as the user message to the template's model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lamina.errors import ResourceNotFound
from lamina.gateway.config import PromptConfig
from lamina.gateway.errors import InvalidGatewayRequest

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
