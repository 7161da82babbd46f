"""The semantic cache with a fake clock and a fake embedder."""

from __future__ import annotations

from typing import Any

import pytest

from lamina.gateway.cache import ResponseCache
from lamina.gateway.config import (
    ConfigError,
    ModelConfig,
    RouteConfig,
    SemanticCacheConfig,
    parse_config,
)
from lamina.gateway.semantic_cache import SemanticIndex, prompt_text, scope_of, unit

ANSWER = {"id": "c1", "choices": [{"index": 0, "message": {"content": "hi"}}]}


def chat(*texts: str, **params: Any) -> dict[str, Any]:
    return {"model": "gpt", "messages": [{"role": "user", "content": t} for t in texts], **params}


def test_prompt_text_is_the_messages_text_normalized() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be   brief.\n"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        ]
    }
    assert prompt_text(body) == "system: Be brief.\nuser: a b"
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    assert prompt_text({"messages": [{"role": "user", "content": [image]}]}) is None
    calls = {"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]}
    assert prompt_text({"messages": [{"role": "user", "content": "x"}, calls]}) is None
    assert prompt_text({"input": "responses API"}) is None


def test_scope_is_everything_but_the_prompt() -> None:
    base = scope_of("chat", chat("a"), "embed")
    assert base == scope_of("chat", chat("b", stream=True, user="u"), "embed")
    assert base != scope_of("chat", chat("a", temperature=0), "embed")
    assert base != scope_of("chat", {**chat("a"), "model": "claude"}, "embed")
    assert base != scope_of("chat", chat("a"), "other-embed")


def test_scope_ignores_the_prompt_inside_native_requests() -> None:
    def messages(text: str, **native: Any) -> dict[str, Any]:
        anthropic = {"system": "s", "messages": [{"role": "user", "content": text}], **native}
        return {**chat(text), "_anthropic": anthropic}

    assert scope_of("chat", messages("a"), "e") == scope_of("chat", messages("b"), "e")
    assert scope_of("chat", messages("a"), "e") != scope_of("chat", messages("a", top_k=3), "e")
    responses = {**chat("a"), "_responses": {"input": "a", "instructions": "i"}}
    assert scope_of("chat", responses, "e") == scope_of(
        "chat", {**chat("b"), "_responses": {"input": "b", "instructions": "j"}}, "e"
    )
    # Blocks only Anthropic understands are not in `messages`: no prompt text to embed.
    assert prompt_text({**chat("a"), "_untranslated": ["document"]}) is None


def test_nearest_by_cosine_within_scope_ttl_and_bound() -> None:
    now = [0.0]
    index = SemanticIndex(lambda: now[0])
    x, xy, y = unit([1, 0]), unit([1, 0.1]), unit([0, 1])
    assert x is not None and xy is not None and y is not None
    assert unit([0, 0]) is None
    index.add("gpt", "s", x, {"v": "x"}, 10, max_entries=2)
    hit = index.nearest("gpt", "s", xy, 0.99)
    assert hit is not None and hit[0] == {"v": "x"} and hit[1] == pytest.approx(0.995, 1e-3)
    assert index.nearest("gpt", "s", y, 0.5) is None  # orthogonal
    assert index.nearest("gpt", "other", x, 0.5) is None  # another scope
    assert index.nearest("claude", "s", x, 0.5) is None  # another model
    index.add("gpt", "s", y, {"v": "y"}, 10, max_entries=2)
    assert index.nearest("gpt", "s", x, 0.9) is not None  # x is now the most recent
    index.add("gpt", "s", xy, {"v": "xy"}, 10, max_entries=2)  # evicts y
    assert len(index) == 2 and index.nearest("gpt", "s", y, 0.9) is None
    best = index.nearest("gpt", "s", xy, 0.9)
    assert best is not None and best[0] == {"v": "xy"}  # the nearest, not the first
    now[0] = 10
    assert index.nearest("gpt", "s", x, 0.5) is None and len(index) == 0


def model(threshold: float = 0.9, ttl_s: float | None = 60) -> ModelConfig:
    return ModelConfig(
        "gpt",
        (RouteConfig("o", "gpt-4o-mini"),),
        cache_ttl_s=ttl_s,
        cache_semantic=SemanticCacheConfig("embed", threshold, 100),
    )


async def test_lookup_exact_then_semantic_then_store() -> None:
    vectors = {
        "user: hello there": [1.0, 0.0],
        "user: hello there!": [1.0, 0.05],
        "user: goodbye": [0.0, 1.0],
    }
    embedded: list[tuple[str, str]] = []

    async def embed(name: str, text: str) -> list[float]:
        embedded.append((name, text))
        return vectors[text]

    cache = ResponseCache(lambda: 0.0, embed=embed)
    first = await cache.lookup(model(), "chat", chat("hello there"))
    assert (first.outcome, first.hit, first.enabled) == ("miss", None, True)
    cache.store(first, ANSWER)
    exact = await cache.lookup(model(), "chat", chat("hello there"))
    near = await cache.lookup(model(), "chat", chat("hello  there!"))
    far = await cache.lookup(model(), "chat", chat("goodbye"))
    assert (exact.outcome, exact.hit) == ("hit", ANSWER)
    assert (near.outcome, near.hit) == ("semantic-hit", ANSWER)
    assert (far.outcome, far.hit) == ("miss", None)
    assert embedded == [
        ("embed", "user: hello there"),
        ("embed", "user: hello there!"),
        ("embed", "user: goodbye"),
    ]
    cache.store(near, {"other": True})  # a hit is never stored again
    assert (await cache.lookup(model(), "chat", chat("hello  there!"))).hit == ANSWER


async def test_a_failing_embedder_leaves_the_exact_cache() -> None:
    async def embed(name: str, text: str) -> list[float]:
        raise RuntimeError("embeddings model down")

    cache = ResponseCache(lambda: 0.0, embed=embed)
    miss = await cache.lookup(model(), "chat", chat("a"))
    assert (miss.outcome, miss.probe) == ("miss", None)
    cache.store(miss, ANSWER)
    assert (await cache.lookup(model(), "chat", chat("a"))).outcome == "hit"


async def test_an_uncached_model_is_not_looked_up() -> None:
    async def embed(name: str, text: str) -> list[float]:
        raise AssertionError("not called")

    lookup = await ResponseCache(lambda: 0.0, embed=embed).lookup(
        model(ttl_s=None), "chat", chat("a")
    )
    assert not lookup.enabled


@pytest.mark.parametrize(
    ("semantic", "error"),
    [
        ({"embeddings_model": "nope"}, "unknown model 'nope'"),
        ({"embeddings_model": "gpt"}, "cannot embed its own prompts"),
        (
            {"embeddings_model": "embed", "threshold": 1.5},
            r"threshold must be a number in \(0, 1\]",
        ),
        ({"threshold": 0.9}, "embeddings_model is required"),
    ],
)
def test_semantic_config_refusals(semantic: dict[str, Any], error: str) -> None:
    raw = {
        "providers": [{"name": "o", "type": "openai"}],
        "models": [
            {
                "name": "gpt",
                "routes": [{"provider": "o", "model": "m"}],
                "cache": {"ttl_s": 60, "semantic": semantic},
            },
            {"name": "embed", "routes": [{"provider": "o", "model": "e"}]},
        ],
    }
    with pytest.raises(ConfigError, match=error):
        parse_config(raw, {})


def test_semantic_config() -> None:
    raw = {
        "providers": [{"name": "o", "type": "openai"}],
        "models": [
            {
                "name": "gpt",
                "routes": [{"provider": "o", "model": "m"}],
                "cache": {
                    "ttl_s": 60,
                    "semantic": {"embeddings_model": "embed", "threshold": 0.9, "max_entries": 50},
                },
            },
            {"name": "embed", "routes": [{"provider": "o", "model": "e"}]},
        ],
    }
    config = parse_config(raw, {})
    assert config.models["gpt"].cache_semantic == SemanticCacheConfig("embed", 0.9, 50)
    assert config.models["embed"].cache_semantic is None
    raw["models"][0]["cache"] = {"semantic": {"embeddings_model": "embed"}}
    with pytest.raises(ConfigError, match=r"needs gateway\.models\[0\]\.cache\.ttl_s"):
        parse_config(raw, {})
