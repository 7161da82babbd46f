"""Providers: pure transforms between lamina's lingua franca (OpenAI chat completion
shapes) and each provider's own wire format. No I/O here: `upstream.py` sends what a
provider builds, and hands back what the provider must parse."""

from __future__ import annotations

from lamina.gateway.providers.anthropic import AnthropicProvider
from lamina.gateway.providers.base import (
    JSON,
    Deployment,
    Provider,
    StreamDecoder,
    UpstreamRequest,
)
from lamina.gateway.providers.bedrock import BedrockProvider
from lamina.gateway.providers.cohere import CohereProvider
from lamina.gateway.providers.gemini import GeminiProvider
from lamina.gateway.providers.local_embeddings import LocalEmbeddingsProvider
from lamina.gateway.providers.openai import OpenAIProvider


def provider_for(kind: str) -> Provider:
    if kind == "openai":
        return OpenAIProvider()
    if kind == "anthropic":
        return AnthropicProvider()
    if kind == "gemini":
        return GeminiProvider()
    if kind == "cohere":
        return CohereProvider()
    if kind == "bedrock":
        return BedrockProvider()
    if kind == "local-embeddings":
        return LocalEmbeddingsProvider()
    raise ValueError(f"unknown provider type {kind!r}")


__all__ = [
    "JSON",
    "AnthropicProvider",
    "BedrockProvider",
    "CohereProvider",
    "Deployment",
    "GeminiProvider",
    "LocalEmbeddingsProvider",
    "OpenAIProvider",
    "Provider",
    "StreamDecoder",
    "UpstreamRequest",
    "provider_for",
]
