"""Retries, fallbacks, timeouts, circuit breaking and broken streams."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import openai
import pytest

from tests.integration.gateway.gateway_mocks import Fault
from tests.integration.gateway.harness import APP_KEY, ROOT_SECRET, Launch, Mocks, base_config

HELLO = [{"role": "user", "content": "hello"}]


def with_fallback(mocks: Mocks, **options: object) -> dict[str, object]:
    config = base_config(mocks)
    config["models"][0].update({"fallbacks": ["claude"], **options})
    return config


async def test_retries_on_5xx_then_succeeds(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["models"][0]["retries"] = 2
    mocks.openai.fail(Fault(500), Fault(429, headers={"retry-after": "0"}))
    async with launch(config) as gw:
        reply = await gw.openai().chat.completions.with_raw_response.create(
            model="gpt", messages=HELLO)
    assert reply.headers["x-lamina-attempts"] == "3"
    assert len(mocks.openai.requests) == 3


async def test_client_errors_are_not_retried(launch: Launch, mocks: Mocks) -> None:
    config = with_fallback(mocks, retries=3)
    mocks.openai.fail(Fault(400, body={"error": {"message": "bad temperature",
                                                 "type": "invalid_request_error"}}))
    async with launch(config) as gw:
        with pytest.raises(openai.BadRequestError) as refused:
            await gw.openai().chat.completions.create(model="gpt", messages=HELLO)
    assert refused.value.body["message"] == "bad temperature"  # type: ignore[index]
    assert len(mocks.openai.requests) == 1 and mocks.anthropic.requests == []


async def test_fallback_to_another_provider(launch: Launch, mocks: Mocks) -> None:
    mocks.openai.fail(Fault(503), Fault(503))
    async with launch(with_fallback(mocks, retries=1)) as gw:
        reply = await gw.openai().chat.completions.with_raw_response.create(
            model="gpt", messages=HELLO)
    assert reply.headers["x-lamina-fallback"] == "true"
    assert reply.headers["x-lamina-provider"] == "claude"
    assert (reply.parse().choices[0].message.content or "").startswith("anthropic-mock")


async def test_every_deployment_failing_maps_to_inbound_error(launch: Launch,
                                                              mocks: Mocks) -> None:
    mocks.openai.fail(Fault(500))
    mocks.anthropic.fail(Fault(529))
    async with launch(with_fallback(mocks)) as gw:
        with pytest.raises(anthropic.InternalServerError) as failed:
            await gw.anthropic().messages.create(model="gpt", max_tokens=10, messages=HELLO)
    assert failed.value.status_code == 503
    assert failed.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_upstream_timeout(launch: Launch, mocks: Mocks) -> None:
    mocks.openai.fail(Fault(hang=True))
    async with launch(base_config(mocks, timeout_s=0.3)) as gw:
        with pytest.raises(openai.APIStatusError) as timed_out:
            await gw.openai().chat.completions.create(model="gpt", messages=HELLO)
    assert timed_out.value.status_code == 504
    assert timed_out.value.body["code"] == "upstream_timeout"  # type: ignore[index]


async def test_timeout_falls_back(launch: Launch, mocks: Mocks) -> None:
    mocks.openai.fail(Fault(hang=True))
    async with launch(with_fallback(mocks, timeout_s=0.3)) as gw:
        reply = await gw.openai().chat.completions.create(model="gpt", messages=HELLO)
    assert (reply.choices[0].message.content or "").startswith("anthropic-mock")


async def test_circuit_opens_after_consecutive_failures(launch: Launch, mocks: Mocks) -> None:
    config = with_fallback(mocks)
    config["circuit_breaker"] = {"failures": 2, "cooldown_s": 3600}
    mocks.openai.fail(Fault(500), Fault(500))
    async with launch(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        client = gw.openai()
        for _ in range(4):
            await client.chat.completions.create(model="gpt", messages=HELLO)
        deployments = (await http.get("/gateway/admin/deployments", headers={
            "authorization": f"Bearer {ROOT_SECRET}"})).json()["data"]
    circuits = {(d["model"], d["provider"]): d["circuit"] for d in deployments}
    assert circuits[("gpt", "openai-main")] == "open"
    assert circuits[("claude", "claude")] == "closed"
    # Two failures opened the circuit: the next two calls went straight to the fallback.
    assert len(mocks.openai.requests) == 2
    assert len(mocks.anthropic.requests) == 4


@pytest.mark.parametrize("model", ["gpt", "claude"])
async def test_stream_broken_mid_way_ends_with_error(launch: Launch, mocks: Mocks,
                                                     model: str) -> None:
    mocks.openai.fail(Fault(break_after=3))
    mocks.anthropic.fail(Fault(break_after=4))
    async with launch(base_config(mocks)) as gw:
        stream = await gw.openai().chat.completions.create(model=model, messages=HELLO,
                                                           stream=True)
        with pytest.raises(openai.APIError) as broken:
            async for _ in stream:
                pass
    assert "broke off" in broken.value.message


async def test_client_disconnect_cancels_upstream_stream(launch: Launch, mocks: Mocks) -> None:
    mocks.anthropic.reply_text = "x" * 100_000  # long enough to still be streaming
    async with launch(base_config(mocks)) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        async with http.stream("POST", "/v1/chat/completions", headers={
                "authorization": f"Bearer {APP_KEY}"}, json={
                "model": "claude", "messages": HELLO, "stream": True}) as response:
            async for _ in response.aiter_bytes():
                break
        await asyncio.wait_for(mocks.anthropic.cancelled.wait(), timeout=30)


async def test_client_disconnect_cancels_upstream_call(launch: Launch, mocks: Mocks) -> None:
    mocks.openai.fail(Fault(hang=True))
    async with launch(base_config(mocks, timeout_s=600)) as gw, \
            httpx.AsyncClient(base_url=gw.url) as http:
        request = asyncio.create_task(http.post("/v1/chat/completions", headers={
            "authorization": f"Bearer {APP_KEY}"}, json={"model": "gpt", "messages": HELLO}))
        while not mocks.openai.requests:
            await asyncio.sleep(0.01)
        request.cancel()  # the client goes away while the provider is still thinking
        await asyncio.wait_for(mocks.openai.cancelled.wait(), timeout=30)


async def test_leaving_before_a_stream_starts_frees_the_parallel_slot(launch: Launch,
                                                                     mocks: Mocks) -> None:
    config = base_config(mocks, timeout_s=600)
    config["keys"][0]["max_parallel"] = 1
    mocks.openai.fail(Fault(hang=True))  # the provider never sends the stream's head
    async with launch(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        request = asyncio.create_task(http.post("/v1/chat/completions", headers={
            "authorization": f"Bearer {APP_KEY}"}, json={
            "model": "gpt", "messages": HELLO, "stream": True}))
        while not mocks.openai.requests:
            await asyncio.sleep(0.01)
        request.cancel()
        await asyncio.wait_for(mocks.openai.cancelled.wait(), timeout=30)
        reply = await gw.openai().chat.completions.create(model="gpt", messages=HELLO)
    assert reply.choices[0].message.content
