"""Observability of gateway calls through the SDKs: Prometheus metrics at
/gateway/metrics, and request/response bodies in the call log, redacted."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.gateway.gateway_mocks import Fault
from tests.integration.gateway.harness import ROOT_SECRET, Launch, Mocks, base_config

HELLO = [{"role": "user", "content": "hello"}]
ROOT = {"authorization": f"Bearer {ROOT_SECRET}"}
LIMITED_KEY = "sk-lamina-limited"
GPT = {"model": "gpt", "provider": "openai-main", "upstream_model": "gpt-4o-mini"}


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float | None:
    """The one sample of `name` whose labels include `labels`."""
    found = [v for n, ls, v in samples(text) if n == name and labels.items() <= ls.items()]
    assert len(found) <= 1, f"{name} {labels} matches {len(found)} samples"
    return found[0] if found else None


async def scrape(http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> str:
    response = await http.get("/gateway/metrics", headers=headers or ROOT)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def observed_config(mocks: Mocks) -> dict[str, Any]:
    config = base_config(mocks)
    gpt = config["models"][0]
    gpt.update({"fallbacks": ["claude"], "cache": {"ttl_s": 60}})
    config["keys"].append({"key": LIMITED_KEY, "name": "limited", "rpm": 1})
    return config


async def test_metrics_count_every_call(launch: Launch, mocks: Mocks) -> None:
    async with launch(observed_config(mocks)) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        client = gw.openai()
        await client.chat.completions.create(model="gpt", messages=HELLO)
        await client.chat.completions.create(model="gpt", messages=HELLO)  # a cache hit
        stream = await client.chat.completions.create(
            model="gpt",
            messages=[{"role": "user", "content": "stream it"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert [c async for c in stream]
        limited = gw.openai(LIMITED_KEY)
        await limited.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "once"}]
        )
        with pytest.raises(openai.RateLimitError):
            await limited.chat.completions.create(
                model="gpt", messages=[{"role": "user", "content": "twice"}]
            )
        mocks.openai.fail(Fault(503))
        fell_back = await client.chat.completions.with_raw_response.create(
            model="gpt", messages=[{"role": "user", "content": "fall back"}]
        )
        assert fell_back.headers["x-lamina-fallback"] == "true"
        await gw.gateway.drain()
        text = await scrape(http)
        usage = (await http.get("/gateway/admin/usage?group_by=key", headers=ROOT)).json()

    miss = {"key": "app", "api": "chat", "status": "200", "cache": "miss", **GPT}
    assert value(text, "lamina_gateway_requests_total", **miss) == 2  # plain + streamed
    assert (
        value(
            text,
            "lamina_gateway_requests_total",
            key="app",
            model="gpt",
            cache="hit",
            provider="",
            status="200",
        )
        == 1
    )
    assert (
        value(text, "lamina_gateway_requests_total", key="limited", status="429", provider="") == 1
    )
    assert value(text, "lamina_gateway_requests_total", key="limited", status="200") == 1
    # The mock answers 12 prompt (2 cached) + 5 completion tokens a call.
    assert value(text, "lamina_gateway_tokens_total", key="app", type="prompt", **GPT) == 24
    assert value(text, "lamina_gateway_tokens_total", key="app", type="completion", **GPT) == 10
    assert value(text, "lamina_gateway_tokens_total", key="app", type="cached", **GPT) == 4
    assert value(text, "lamina_gateway_request_duration_seconds_count", **GPT) == 3
    assert value(text, "lamina_gateway_time_to_first_token_seconds_count", **GPT) == 1
    assert (
        value(
            text,
            "lamina_gateway_fallbacks_total",
            model="gpt",
            provider="claude",
            upstream_model="claude-3-5-haiku-latest",
        )
        == 1
    )
    # Metrics and the usage table are fed from the same records: the costs agree.
    metric_cost = sum(
        v
        for n, ls, v in samples(text)
        if n == "lamina_gateway_cost_usd_total" and ls["key"] == "app"
    )
    table_cost = next(r["cost_usd"] for r in usage["data"] if r["key"] == "app")
    assert metric_cost > 0 and metric_cost == pytest.approx(table_cost)
    # One failure so far on openai-main: still closed; and nothing in flight.
    assert value(text, "lamina_gateway_circuit_state", state="closed", **GPT) == 1
    assert value(text, "lamina_gateway_circuit_state", state="open", **GPT) == 0
    assert value(text, "lamina_gateway_circuit_consecutive_failures", **GPT) == 1
    assert value(text, "lamina_gateway_requests_in_flight", model="gpt") == 0


async def test_metrics_show_open_circuits_and_calls_in_flight(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["circuit_breaker"] = {"failures": 1, "cooldown_s": 3600}
    async with launch(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        client = gw.openai()
        mocks.openai.fail(Fault(500))
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt", messages=HELLO)
        mocks.anthropic.fail(Fault(hang=True))
        hanging = asyncio.create_task(
            gw.anthropic().messages.create(model="claude", max_tokens=5, messages=HELLO)
        )
        in_flight = None
        for _ in range(200):
            in_flight = value(
                await scrape(http), "lamina_gateway_requests_in_flight", model="claude"
            )
            if in_flight == 1:
                break
            await asyncio.sleep(0.02)
        assert in_flight == 1
        hanging.cancel()  # the client leaves: the call ends and gives its place back
        with pytest.raises(asyncio.CancelledError):
            await hanging
        await asyncio.wait_for(mocks.anthropic.cancelled.wait(), 5)
        await gw.gateway.drain()
        text = await scrape(http)
    assert value(text, "lamina_gateway_circuit_state", state="open", **GPT) == 1
    assert value(text, "lamina_gateway_circuit_state", state="closed", **GPT) == 0
    assert value(text, "lamina_gateway_requests_in_flight", model="claude") == 0
    assert value(text, "lamina_gateway_requests_total", model="gpt", status="500") == 1
    assert value(text, "lamina_gateway_requests_total", model="claude", status="499") == 1


async def test_metrics_need_credentials_unless_configured(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["telemetry"] = {"metrics": {"token": "scrape-me"}}
    async with launch(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        anonymous = await http.get("/gateway/metrics")
        app_key = await http.get(
            "/gateway/metrics", headers={"authorization": "Bearer sk-lamina-app"}
        )
        token = await http.get("/gateway/metrics", headers={"authorization": "Bearer scrape-me"})
        root = await http.get("/gateway/metrics", headers=ROOT)
    assert anonymous.status_code == 401 and app_key.status_code == 401
    assert "metrics token" in anonymous.json()["error"]["message"]
    assert token.status_code == 200 and root.status_code == 200
    assert "lamina_gateway_requests_in_flight" in token.text

    config["telemetry"] = {"metrics": {"public": True}}
    async with launch(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        assert (await http.get("/gateway/metrics")).status_code == 200


SECRET = "sk-proj-Zx81kq0o2mUuQ9s7T4vW3y"


async def test_bodies_are_logged_redacted_for_the_models_asked(
    launch: Launch, mocks: Mocks
) -> None:
    config = base_config(mocks)
    config["log_bodies"] = {"models": ["gpt"], "redact": ["user", "metadata.customer"]}
    asked = f"my key is {SECRET}, keep it safe"
    async with launch(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        client = gw.openai()
        await client.chat.completions.create(
            model="gpt",
            messages=[{"role": "user", "content": asked}],
            user="alice@example.com",
            temperature=0.3,
            extra_body={
                "api_key": "hunter2-plaintext",
                "metadata": {"customer": "ACME", "team": "blue"},
            },
        )
        stream = await client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "streamed words"}], stream=True
        )
        assert [c async for c in stream]
        await client.chat.completions.create(model="claude", messages=HELLO)
        calls = (await http.get("/gateway/admin/calls?limit=10", headers=ROOT)).json()["data"]
        only_claude = (await http.get("/gateway/admin/calls?model=claude", headers=ROOT)).json()[
            "data"
        ]
        refused = await http.get("/gateway/admin/calls")
    assert refused.status_code == 401
    assert [c["model"] for c in calls] == ["claude", "gpt", "gpt"]  # newest first
    claude, streamed, plain = calls
    assert [c["model"] for c in only_claude] == ["claude"]
    assert claude["request_body"] is None and claude["response_body"] is None
    request, response = plain["request_body"], plain["response_body"]
    for secret in (SECRET, "alice@example.com", "hunter2-plaintext", "ACME"):
        assert secret not in request and secret not in response
    assert "my key is [REDACTED], keep it safe" in request  # the rest stays readable
    assert '"team":"blue"' in request and '"temperature":0.3' in request
    assert "openai-mock says: my key is [REDACTED]" in response  # the mock echoes it
    assert plain["status"] == 200 and plain["prompt_tokens"] == 12
    # A stream's answer is logged as the whole completion it folded into.
    assert streamed["stream"] is True
    assert "openai-mock says: streamed words" in streamed["response_body"]


async def test_logged_bodies_are_capped(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["log_bodies"] = {"max_bytes": 64}
    async with launch(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        await gw.openai().chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "x" * 500}]
        )
        (call,) = (await http.get("/gateway/admin/calls", headers=ROOT)).json()["data"]
    kept, _, tail = call["request_body"].partition("…[truncated ")
    assert len(kept.encode()) == 64
    assert tail.endswith(" bytes]") and int(tail.split()[0]) > 400
