"""Keys, limits, budgets, cache and accounting, through the openai SDK."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from sqlalchemy import select

from tests.integration.gateway.gateway_mocks import Fault
from tests.integration.gateway.harness import APP_KEY, OTHER_KEY, Launch, Mocks, base_config

HELLO = [{"role": "user", "content": "hello"}]


async def test_bad_and_forbidden_keys_in_openai_shape(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        with pytest.raises(openai.AuthenticationError) as unknown:
            await gw.openai("sk-nope").chat.completions.create(model="gpt", messages=HELLO)
        with pytest.raises(openai.PermissionDeniedError) as forbidden:
            await gw.openai(OTHER_KEY).chat.completions.create(model="claude", messages=HELLO)
        with pytest.raises(openai.NotFoundError):
            await gw.openai().chat.completions.create(model="nope", messages=HELLO)
    assert unknown.value.status_code == 401
    assert unknown.value.body == {"message": "invalid API key",
                                  "type": "invalid_request_error", "param": None,
                                  "code": "invalid_api_key"}
    assert forbidden.value.code == "model_not_allowed"
    assert mocks.openai.requests == [] and mocks.anthropic.requests == []


async def test_malformed_bodies_are_400_in_each_shape(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        auth = {"authorization": f"Bearer {APP_KEY}"}
        not_json = await http.post("/v1/chat/completions", content=b"{nope", headers=auth)
        no_messages = await http.post("/v1/chat/completions", json={"model": "gpt"},
                                      headers=auth)
        anthropic_bad = await http.post("/v1/messages", json={"model": "claude"},
                                        headers={"x-api-key": APP_KEY})
    assert not_json.status_code == 400 and not_json.json()["error"]["type"] == \
        "invalid_request_error"
    assert no_messages.status_code == 400
    assert anthropic_bad.status_code == 400
    assert anthropic_bad.json()["type"] == "error"
    assert anthropic_bad.json()["error"]["type"] == "invalid_request_error"


async def test_rpm_limit_answers_429_with_retry_after(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["keys"][0]["rpm"] = 2
    async with launch(config) as gw:
        client = gw.openai()
        for _ in range(2):
            await client.chat.completions.create(model="gpt", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="gpt", messages=HELLO)
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert limited.value.code == "rate_limit_exceeded"
    assert len(mocks.openai.requests) == 2


async def test_tpm_limit_counts_real_usage(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["keys"][0]["tpm"] = 30  # the mock's answer uses 17 tokens
    async with launch(config) as gw:
        client = gw.openai()
        await client.chat.completions.create(model="gpt", messages=HELLO)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt", messages=HELLO)


async def test_parallel_limit(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["keys"][0]["max_parallel"] = 1
    config["models"][0]["timeout_s"] = 30
    mocks.openai.fail(Fault(hang=True))
    async with launch(config) as gw:
        client = gw.openai()
        slow = asyncio.create_task(client.chat.completions.create(model="gpt", messages=HELLO))
        while not mocks.openai.requests:
            await asyncio.sleep(0.01)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt", messages=HELLO)
        slow.cancel()


async def test_budget_is_debited_and_enforced(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["pricing"] = {"gpt-4o-mini": {"input_per_mtok": 1_000_000,
                                         "output_per_mtok": 1_000_000}}
    config["keys"][0]["budget_usd"] = 20  # one call costs $17
    async with launch(config) as gw:
        client = gw.openai()
        await client.chat.completions.create(model="gpt", messages=HELLO)
        await client.chat.completions.create(model="gpt", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as exhausted:
            await client.chat.completions.create(model="gpt", messages=HELLO)
        await gw.gateway.drain()
        async with gw.gateway.engine.connect() as conn:
            rows = (await conn.execute(select(gw.gateway.tables.spend))).all()
    assert exhausted.value.code == "budget_exceeded"
    assert [(r.key_id, r.period, r.spent_usd) for r in rows] == [("config:app", "total", 34.0)]


async def test_spend_survives_restart(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["pricing"] = {"gpt-4o-mini": {"input_per_mtok": 1_000_000,
                                         "output_per_mtok": 1_000_000}}
    config["keys"][0]["budget_usd"] = 10
    async with launch(config) as gw:
        await gw.openai().chat.completions.create(model="gpt", messages=HELLO)
    async with launch(config) as gw:
        with pytest.raises(openai.RateLimitError):
            await gw.openai().chat.completions.create(model="gpt", messages=HELLO)


async def test_cost_from_shipped_pricing_data(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        await gw.openai().chat.completions.create(model="gpt", messages=HELLO)
        await gw.gateway.drain()
        async with gw.gateway.engine.connect() as conn:
            row = (await conn.execute(select(gw.gateway.tables.usage))).one()
    assert row.cost_usd > 0  # gpt-4o-mini is priced by the data set
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (12, 5, 2)
    assert (row.key_name, row.model, row.provider, row.upstream_model, row.status) == \
        ("app", "gpt", "openai-main", "gpt-4o-mini", 200)


@pytest.mark.parametrize("stream", [False, True])
async def test_exact_match_cache(launch: Launch, mocks: Mocks, stream: bool) -> None:
    async with launch(base_config(mocks, cache={"ttl_s": 300})) as gw:
        client = gw.openai()
        first = await client.chat.completions.with_raw_response.create(
            model="claude", messages=HELLO)
        assert first.headers["x-lamina-cache"] == "miss"
        if stream:
            response = await client.chat.completions.with_raw_response.create(
                model="claude", messages=HELLO, stream=True)
            chunks = [c async for c in response.parse()]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            response = await client.chat.completions.with_raw_response.create(
                model="claude", messages=HELLO)
            text = response.parse().choices[0].message.content or ""
        await gw.gateway.drain()
        async with gw.gateway.engine.connect() as conn:
            rows = (await conn.execute(select(gw.gateway.tables.usage))).all()
    assert response.headers["x-lamina-cache"] == "hit"
    assert text.endswith("says: hello")
    assert len(mocks.anthropic.requests) == 1
    assert [r.cache_hit for r in rows] == [False, True] and rows[1].cost_usd == 0


async def test_budget_counts_calls_in_flight(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks, timeout_s=30)
    config["pricing"] = {"gpt-4o-mini": {"input_per_mtok": 1_000_000,
                                         "output_per_mtok": 1_000_000}}
    config["keys"][0]["budget_usd"] = 10  # below one call's estimate (~$17)
    mocks.openai.fail(Fault(hang=True))
    async with launch(config) as gw:
        client = gw.openai()
        slow = asyncio.create_task(client.chat.completions.create(model="gpt", messages=HELLO))
        while not mocks.openai.requests:
            await asyncio.sleep(0.01)
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model="gpt", messages=HELLO)
        slow.cancel()
    assert refused.value.code == "budget_exceeded"
    assert "in flight" in refused.value.message


async def test_oversized_body_is_413(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        host, port = gw.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        # Declares 65 MiB; refused from the headers, before any of it is read.
        writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: " + APP_KEY.encode()
                     + b"\r\ncontent-length: " + str(65 << 20).encode() + b"\r\n\r\n{}")
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
    assert head.startswith(b"HTTP/1.1 413")


async def test_model_limits_apply_across_keys(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["models"][0]["rpm"] = 1
    async with launch(config) as gw:
        await gw.openai(APP_KEY).chat.completions.create(model="gpt", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as limited:
            await gw.openai(OTHER_KEY).chat.completions.create(model="gpt", messages=HELLO)
        await gw.openai(OTHER_KEY).models.list()  # other calls are not limited
    assert "model 'gpt'" in limited.value.message


async def test_a_streamed_answer_is_cached_whole(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks, cache={"ttl_s": 300})) as gw:
        client = gw.openai()
        streamed = [c async for c in await client.chat.completions.create(
            model="gpt", messages=HELLO, stream=True)]
        hit = await client.chat.completions.with_raw_response.create(model="gpt",
                                                                     messages=HELLO)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert hit.headers["x-lamina-cache"] == "hit"
    assert hit.parse().choices[0].message.content == text
    assert len(mocks.openai.requests) == 1


async def test_limits_changed_by_a_reload_apply_at_once(launch: Launch, mocks: Mocks,
                                                        tmp_path: Path) -> None:
    # The limiter's scopes of a key and a model are made once: a reloaded key or model
    # must get its new limits (its requests so far still counted).
    config = base_config(mocks)
    config["keys"][0]["rpm"] = 1
    config_file = tmp_path / "lamina.yaml"
    config_file.write_text(yaml.safe_dump({"gateway": config}))
    async with launch(config, config_file=config_file) as gw:
        client = gw.openai()
        await client.chat.completions.create(model="gpt", messages=HELLO)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt", messages=HELLO)
        config["keys"][0]["rpm"] = 3
        config["models"][0]["rpm"] = 1  # counted from now: a model without limits is not
        config_file.write_text(yaml.safe_dump({"gateway": config}))
        await gw.gateway.reload()
        await client.chat.completions.create(model="gpt", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="gpt", messages=HELLO)
    assert "model 'gpt'" in limited.value.message
    assert len(mocks.openai.requests) == 2
