"""The shape every provider has: build the upstream request, parse its answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lamina.gateway.config import ProviderConfig
from lamina.gateway.pricing import Usage
from lamina.gateway.sse import Event

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model can be served: a configured provider and its model name."""

    provider: ProviderConfig
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider.name}/{self.model}"


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"


class EventSource(Protocol):
    """Splits a provider's response body into events (SSE, or AWS event-stream)."""

    def feed(self, chunk: bytes) -> list[Event]: ...

    def flush(self) -> list[Event]: ...


class StreamDecoder(Protocol):
    """Turns a provider's stream events into OpenAI `chat.completion.chunk`s."""

    def feed(self, event: Event) -> list[JSON]: ...

    @property
    def usage(self) -> Usage | None: ...


class Provider(Protocol):
    def chat_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest: ...

    def chat_response(self, data: JSON, created: int) -> JSON: ...

    def chat_stream(self, created: int) -> StreamDecoder: ...

    def stream_events(self) -> EventSource: ...

    def embeddings_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest: ...

    def embeddings_response(self, data: JSON) -> JSON: ...

    def count_tokens_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        """Raises InvalidGatewayRequest where the provider cannot count tokens."""
        ...

    def count_tokens_response(self, data: JSON) -> int: ...

    def error_message(self, status: int, body: bytes) -> str: ...


def usage_of(openai_usage: Mapping[str, Any] | None) -> Usage | None:
    """Usage from an OpenAI `usage` member."""
    if not openai_usage:
        return None
    details = openai_usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(openai_usage.get("prompt_tokens") or 0),
        completion_tokens=int(openai_usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        cache_write_tokens=int(details.get("cache_write_tokens") or 0),
    )


def openai_usage(usage: Usage) -> JSON:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
