"""The local-embeddings provider without a model: its transforms, and loading and
batching with a fake encoder."""

from __future__ import annotations

import asyncio
import base64
import struct
import threading

import pytest

from lamina.gateway import config as gateway_config
from lamina.gateway.config import ConfigError, ProviderConfig, parse_config
from lamina.gateway.errors import InvalidGatewayRequest, UpstreamError, UpstreamTimeout
from lamina.gateway.providers import provider_for
from lamina.gateway.providers.base import Deployment
from lamina.gateway.providers.local_embeddings import (
    Encoder,
    LocalEmbeddingsProvider,
    embeddings_body,
    texts_of,
)

LOCAL = Deployment(
    ProviderConfig("local", "local-embeddings", model="/models/mini"), "/models/mini"
)


class FakeEncoder:
    """Two dimensions: the text's length and its word count; a token per word + 2."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self._gate = gate

    def encode(self, texts: list[str]) -> list[list[float]]:
        if self._gate is not None:
            self._gate.wait(5)
        self.batches.append(texts)
        return [[float(len(t)), float(len(t.split()))] for t in texts]

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]


def test_inputs_are_text() -> None:
    assert texts_of({"input": "hi"}) == ["hi"]
    assert texts_of({"input": ["a", "b"], "encoding_format": "base64"}) == ["a", "b"]
    for bad in ([1, 2, 3], [[1, 2]], [], None, ["a", 3]):
        with pytest.raises(InvalidGatewayRequest, match="token ids are not accepted"):
            texts_of({"input": bad})
    with pytest.raises(InvalidGatewayRequest, match="encoding_format"):
        texts_of({"input": "a", "encoding_format": "int8"})


def test_response_in_openai_shape_float_and_base64() -> None:
    plain = embeddings_body([[0.5, -1.0], [0.25, 2.0]], 7, "mini")
    assert plain == {
        "object": "list",
        "model": "mini",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
            {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]},
        ],
    }
    packed = embeddings_body([[0.5, -1.0]], 3, "mini", "base64")["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(packed)) == (0.5, -1.0)
    assert embeddings_body([[0.5, -1.0]], 3, "mini", dimensions=2)["data"]
    with pytest.raises(InvalidGatewayRequest, match="'dimensions' 8 does not match"):
        embeddings_body([[0.5, -1.0]], 3, "mini", dimensions=8)


async def test_the_model_loads_once_and_concurrent_requests_share_a_batch() -> None:
    gate = threading.Event()
    encoder = FakeEncoder(gate)
    loads: list[tuple[str, str]] = []

    def load(model: str, provider: ProviderConfig) -> Encoder:
        loads.append((model, provider.device))
        return encoder

    provider = LocalEmbeddingsProvider(load)
    first = asyncio.create_task(provider.embed({"input": "one two"}, LOCAL, 5))
    await asyncio.sleep(0.05)  # the first batch is encoding (held by the gate)
    rest = [
        asyncio.create_task(provider.embed({"input": [f"x{i}", "y z w"]}, LOCAL, 5))
        for i in range(3)
    ]
    await asyncio.sleep(0.05)
    gate.set()
    answers = await asyncio.gather(first, *rest)
    assert loads == [("/models/mini", "cpu")]
    assert encoder.batches == [["one two"], ["x0", "y z w", "x1", "y z w", "x2", "y z w"]]
    assert answers[0]["data"][0]["embedding"] == [7.0, 2.0]
    assert [d["embedding"] for d in answers[2]["data"]] == [[2.0, 1.0], [5.0, 3.0]]
    assert answers[2]["usage"] == {"prompt_tokens": 3 + 5, "total_tokens": 8}
    assert answers[0]["model"] == "/models/mini"


async def test_a_caller_that_leaves_does_not_strand_the_others() -> None:
    gate = threading.Event()
    provider = LocalEmbeddingsProvider(lambda model, provider: FakeEncoder(gate))
    leaving = asyncio.create_task(provider.embed({"input": "a"}, LOCAL, 5))
    await asyncio.sleep(0.05)
    staying = asyncio.create_task(provider.embed({"input": "b c"}, LOCAL, 5))
    await asyncio.sleep(0.01)
    leaving.cancel()
    gate.set()
    assert (await staying)["data"][0]["embedding"] == [3.0, 2.0]


async def test_a_model_that_cannot_load_is_a_500_naming_it_and_is_retried() -> None:
    attempts = []

    def load(model: str, provider: ProviderConfig) -> Encoder:
        attempts.append(model)
        if len(attempts) == 1:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return FakeEncoder()

    provider = LocalEmbeddingsProvider(load)
    with pytest.raises(UpstreamError) as failed:
        await provider.embed({"input": "a"}, LOCAL, 5)
    assert failed.value.status == 500
    assert "local model '/models/mini' failed: OSError" in failed.value.message
    assert (await provider.embed({"input": "a"}, LOCAL, 5))["data"]


async def test_a_slow_model_times_out() -> None:
    gate = threading.Event()
    provider = LocalEmbeddingsProvider(lambda model, provider: FakeEncoder(gate))
    with pytest.raises(UpstreamTimeout, match=r"did not answer in 0\.05s"):
        await provider.embed({"input": "a"}, LOCAL, 0.05)
    gate.set()


def test_chat_and_token_counting_are_refused() -> None:
    provider = provider_for("local-embeddings")
    assert isinstance(provider, LocalEmbeddingsProvider)
    with pytest.raises(InvalidGatewayRequest, match="serves only embeddings, not chat"):
        provider.chat_request({"messages": []}, LOCAL)
    with pytest.raises(InvalidGatewayRequest, match="not token counting"):
        provider.count_tokens_request({"messages": []}, LOCAL)


def test_config_routes_default_to_the_providers_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway_config, "find_spec", lambda name: object())  # "installed"
    config = parse_config(
        {
            "providers": [
                {
                    "name": "local",
                    "type": "local-embeddings",
                    "model": "/m",
                    "device": "cpu",
                    "threads": 1,
                }
            ],
            "models": [
                {"name": "embed", "routes": [{"provider": "local"}]},
                {"name": "other", "routes": [{"provider": "local", "model": "/n"}]},
            ],
        },
        {},
    )
    assert (config.providers["local"].model, config.providers["local"].threads) == ("/m", 1)
    assert [r.model for r in config.models["embed"].routes] == ["/m"]
    assert [r.model for r in config.models["other"].routes] == ["/n"]


def test_config_refuses_local_embeddings_without_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway_config, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as refused:
        parse_config(
            {"providers": [{"name": "local", "type": "local-embeddings", "model": "/m"}]}, {}
        )
    assert "gateway.providers[0]" in refused.value.message
    assert "pip install 'lamina[embeddings]'" in refused.value.message


def test_config_needs_a_model_for_local_embeddings_and_routes_elsewhere() -> None:
    with pytest.raises(ConfigError, match=r"providers\[0\].model is required"):
        parse_config({"providers": [{"name": "local", "type": "local-embeddings"}]}, {})
    with pytest.raises(ConfigError, match=r"routes\[0\].model is required"):
        parse_config(
            {
                "providers": [{"name": "o", "type": "openai"}],
                "models": [{"name": "m", "routes": [{"provider": "o"}]}],
            },
            {},
        )
