"""The semantic cache through the openai and anthropic SDKs (and one real `lamina
serve`): prompts embedded by the openai mock's bag-of-words /embeddings (same words,
same direction), answers from the mock providers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from lamina.gateway.service import Clocks
from tests.integration.gateway.gateway_mocks import Fault
from tests.integration.gateway.harness import (
    APP_KEY,
    Launch,
    Mocks,
    Running,
    base_config,
    lamina_serving,
)
from tests.integration.support import SECRET_KEY

CATS = [{"role": "user", "content": "Tell me a joke about cats, please!"}]
CATS_REWORDED = [{"role": "user", "content": "please   tell me a joke about cats"}]
DOGS = [{"role": "user", "content": "Tell me a joke about dogs, please!"}]  # cosine 0.875
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def semantic_config(mocks: Mocks, *models: str, threshold: float = 0.95) -> dict[str, Any]:
    config = base_config(mocks)
    for model in config["models"]:
        if model["name"] in models:
            model["cache"] = {
                "ttl_s": 300,
                "semantic": {"embeddings_model": "embed", "threshold": threshold},
            }
    return config


async def ask(
    gw: Running, model: str, messages: list[dict[str, str]], **options: Any
) -> tuple[str, str]:
    """The answer's text and its x-lamina-cache header."""
    response = await gw.openai().chat.completions.with_raw_response.create(
        model=model, messages=messages, **options
    )
    return response.parse().choices[0].message.content or "", response.headers["x-lamina-cache"]


async def usage_rows(gw: Running) -> list[Any]:
    await gw.gateway.drain()
    async with gw.gateway.engine.connect() as conn:
        return list((await conn.execute(select(gw.gateway.tables.usage))).all())


def chats(mocks: Mocks) -> list[dict[str, Any]]:
    return [r for r in mocks.openai.requests if "messages" in r]


def embeddings(mocks: Mocks) -> list[dict[str, Any]]:
    return [r for r in mocks.openai.requests if "input" in r]


async def test_a_similar_prompt_is_a_semantic_hit_and_costs_nothing(
    launch: Launch, mocks: Mocks
) -> None:
    async with launch(semantic_config(mocks, "gpt")) as gw:
        first, first_cache = await ask(gw, "gpt", CATS)
        again, again_cache = await ask(gw, "gpt", CATS_REWORDED)
        exact, exact_cache = await ask(gw, "gpt", CATS)
        rows = await usage_rows(gw)
    assert (first_cache, again_cache, exact_cache) == ("miss", "semantic-hit", "hit")
    assert first == again == exact == "openai-mock says: Tell me a joke about cats, please!"
    assert len(chats(mocks)) == 1
    # One embedding per exact miss, of the normalized prompt; none for the exact hit.
    assert [e["input"] for e in embeddings(mocks)] == [
        ["user: Tell me a joke about cats, please!"],
        ["user: please tell me a joke about cats"],
    ]
    chat_rows = [r for r in rows if r.model == "gpt"]
    assert [(r.cache_hit, r.cost_usd > 0) for r in chat_rows] == [
        (False, True),
        (True, False),
        (True, False),
    ]
    assert len(rows) == 3  # the cache's own embeddings are not billed to the key


async def test_a_semantic_hit_streams(launch: Launch, mocks: Mocks) -> None:
    async with launch(semantic_config(mocks, "gpt")) as gw:
        await ask(gw, "gpt", CATS)
        response = await gw.openai().chat.completions.with_raw_response.create(
            model="gpt",
            messages=CATS_REWORDED,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in response.parse()]
    assert response.headers["x-lamina-cache"] == "semantic-hit"
    assert response.headers["content-type"].startswith("text/event-stream")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "openai-mock says: Tell me a joke about cats, please!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert len(chats(mocks)) == 1


async def test_a_streamed_answer_is_found_semantically(launch: Launch, mocks: Mocks) -> None:
    async with launch(semantic_config(mocks, "gpt")) as gw:
        streamed = [
            c
            async for c in await gw.openai().chat.completions.create(
                model="gpt", messages=CATS, stream=True
            )
        ]
        text, cache = await ask(gw, "gpt", CATS_REWORDED)
    assert cache == "semantic-hit"
    assert text == "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert len(chats(mocks)) == 1


async def test_dissimilar_prompts_miss(launch: Launch, mocks: Mocks) -> None:
    async with launch(semantic_config(mocks, "gpt")) as gw:
        await ask(gw, "gpt", CATS)
        dogs, dogs_cache = await ask(gw, "gpt", DOGS)
        france, france_cache = await ask(gw, "gpt", FRANCE)
    assert (dogs_cache, france_cache) == ("miss", "miss")
    assert dogs.endswith("about dogs, please!") and france.endswith("of France?")
    assert len(chats(mocks)) == 3


async def test_the_threshold_is_the_users(launch: Launch, mocks: Mocks) -> None:
    async with launch(semantic_config(mocks, "gpt", threshold=0.8)) as gw:
        await ask(gw, "gpt", CATS)
        dogs, cache = await ask(gw, "gpt", DOGS)
    assert cache == "semantic-hit" and dogs.endswith("about cats, please!")


async def test_another_model_or_other_parameters_miss(launch: Launch, mocks: Mocks) -> None:
    async with launch(semantic_config(mocks, "gpt", "claude")) as gw:
        await ask(gw, "gpt", CATS)
        _, other_model = await ask(gw, "claude", CATS_REWORDED)
        _, other_params = await ask(gw, "gpt", CATS_REWORDED, temperature=0.2)
        _, same_params = await ask(gw, "gpt", CATS, temperature=0.2)
    assert (other_model, other_params, same_params) == ("miss", "miss", "semantic-hit")
    assert len(mocks.anthropic.requests) == 1 and len(chats(mocks)) == 2


async def test_entries_expire_with_the_ttl(launch: Launch, mocks: Mocks) -> None:
    now = [1000.0]
    async with launch(semantic_config(mocks, "gpt"), clocks=Clocks(monotonic=lambda: now[0])) as gw:
        await ask(gw, "gpt", CATS)
        now[0] += 299
        _, fresh = await ask(gw, "gpt", CATS_REWORDED)
        now[0] += 2  # 301 s after the answer was cached
        _, stale = await ask(gw, "gpt", CATS_REWORDED)
    assert (fresh, stale) == ("semantic-hit", "miss")
    assert len(chats(mocks)) == 2


async def test_a_failing_embeddings_model_only_turns_the_cache_off(
    launch: Launch, mocks: Mocks
) -> None:
    async with launch(semantic_config(mocks, "claude")) as gw:
        mocks.openai.fail(Fault(status=500))  # the embeddings call of the first request
        first, first_cache = await ask(gw, "claude", CATS)
        _, second_cache = await ask(gw, "claude", CATS_REWORDED)
        _, third_cache = await ask(gw, "claude", CATS_REWORDED)
    assert first.endswith("about cats, please!")
    # The first answer was cached exactly only; the second is embedded and indexed.
    assert (first_cache, second_cache, third_cache) == ("miss", "miss", "hit")
    assert len(mocks.anthropic.requests) == 2


@pytest.mark.parametrize(
    "messages",
    [
        [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
                ],
            }
        ],
    ],
)
async def test_prompts_that_are_not_text_are_cached_exactly_only(
    launch: Launch, mocks: Mocks, messages: list[dict[str, Any]]
) -> None:
    async with launch(semantic_config(mocks, "gpt")) as gw:
        await ask(gw, "gpt", messages)
        _, cache = await ask(gw, "gpt", messages)
    assert cache == "hit" and embeddings(mocks) == []


@pytest.mark.slow
async def test_semantic_cache_in_lamina_serve(tmp_path: Path, mocks: Mocks) -> None:
    config = semantic_config(mocks, "gpt")
    config["pricing"] = {
        "gpt-4o-mini": {"input_per_mtok": 1_000_000, "output_per_mtok": 1_000_000}
    }  # $1 a token
    async with lamina_serving(tmp_path, config) as server:
        client = openai.AsyncOpenAI(
            base_url=f"{server.endpoint}/v1", api_key=APP_KEY, max_retries=0
        )
        first = await client.chat.completions.with_raw_response.create(model="gpt", messages=CATS)
        streamed = await client.chat.completions.with_raw_response.create(
            model="gpt", messages=CATS_REWORDED, stream=True
        )
        chunks = [c async for c in streamed.parse()]
        async with httpx.AsyncClient(base_url=server.endpoint) as http:
            usage = (
                await http.get(
                    "/gateway/admin/usage?group_by=model",
                    headers={"authorization": f"Bearer {SECRET_KEY}"},
                )
            ).json()["data"]
        await client.close()
    assert first.headers["x-lamina-cache"] == "miss"
    assert streamed.headers["x-lamina-cache"] == "semantic-hit"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "openai-mock says: Tell me a joke about cats, please!"
    )
    assert len(chats(mocks)) == 1
    # Two requests, one of them a hit: the cost is the one upstream call's.
    (row,) = usage
    assert (row["requests"], row["cache_hits"]) == (2, 1)
    assert row["cost_usd"] == pytest.approx(12 + 5)


async def test_semantic_hits_through_the_anthropic_sdk(launch: Launch, mocks: Mocks) -> None:
    async with launch(semantic_config(mocks, "gpt", "claude")) as gw:
        client = gw.anthropic()
        for model in ("gpt", "claude"):
            await client.messages.create(model=model, max_tokens=50, messages=CATS)
        again = await client.messages.with_raw_response.create(
            model="claude", max_tokens=50, messages=CATS_REWORDED
        )
        async with client.messages.stream(
            model="gpt", max_tokens=50, messages=CATS_REWORDED
        ) as stream:
            streamed = await stream.get_final_message()
            stream_cache = stream.response.headers["x-lamina-cache"]
    message = await again.parse()
    assert again.headers["x-lamina-cache"] == "semantic-hit"
    assert message.content[0].type == "text"
    assert message.content[0].text == "anthropic-mock says: Tell me a joke about cats, please!"
    assert stream_cache == "semantic-hit"
    assert streamed.content[0].type == "text"
    assert streamed.content[0].text == "openai-mock says: Tell me a joke about cats, please!"
    assert len(mocks.anthropic.requests) == 1 and len(chats(mocks)) == 1


async def test_semantic_hits_through_the_responses_api(launch: Launch, mocks: Mocks) -> None:
    async with launch(semantic_config(mocks, "gpt")) as gw:
        client = gw.openai()
        first = await client.responses.with_raw_response.create(
            model="gpt", input="Tell me a joke about cats, please!", instructions="Be brief."
        )
        again = await client.responses.with_raw_response.create(
            model="gpt", input="please tell me a joke about cats", instructions="Be brief."
        )
        other = await client.responses.with_raw_response.create(
            model="gpt", input="please tell me a joke about cats", instructions="Be long."
        )
    assert [r.headers["x-lamina-cache"] for r in (first, again, other)] == [
        "miss",
        "semantic-hit",
        "miss",
    ]
    assert again.parse().output_text == first.parse().output_text
    assert len(chats(mocks)) == 2
