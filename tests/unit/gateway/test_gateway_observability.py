"""Metrics, span attributes, body redaction and the telemetry config, without a server."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from lamina.gateway.bodies import REDACTED, logged_body, redact
from lamina.gateway.config import (
    BodyLogConfig,
    ConfigError,
    ProviderConfig,
    TelemetryConfig,
    parse_config,
)
from lamina.gateway.metrics import CallMetrics, LiveState
from lamina.gateway.telemetry import InFlight, Telemetry
from lamina.gateway.tracing import SpanExport, span_attributes, span_name, traces_endpoint
from lamina.gateway.usage import Exchange, UsageRecord


def record(**changes: Any) -> UsageRecord:
    base = UsageRecord(
        ts=1_700_000_000.0,
        key_id="config:app",
        key_name="app",
        model="fast",
        provider="openai-main",
        upstream_model="gpt-4o-mini",
        api="chat",
        status=200,
        prompt_tokens=12,
        completion_tokens=5,
        cached_tokens=2,
        cost_usd=0.001,
        latency_ms=250.0,
        ttft_ms=None,
        cache_hit=False,
        fallback=False,
        stream=False,
    )
    return replace(base, **changes)


# -- metrics --------------------------------------------------------------------------


def test_call_metrics_count_requests_tokens_cost_and_latency() -> None:
    registry = CollectorRegistry()
    metrics = CallMetrics(registry)
    metrics.observe(
        [
            record(),
            record(stream=True, ttft_ms=40.0, latency_ms=900.0),
            record(
                status=429,
                provider="",
                upstream_model="",
                prompt_tokens=0,
                completion_tokens=0,
                cached_tokens=0,
                cost_usd=0.0,
                latency_ms=0.1,
            ),
            record(fallback=True, provider="claude", upstream_model="haiku"),
        ]
    )
    call = {
        "key": "app",
        "model": "fast",
        "provider": "openai-main",
        "upstream_model": "gpt-4o-mini",
    }
    deployment = {k: v for k, v in call.items() if k != "key"}

    def get(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert get("lamina_gateway_requests_total", **call, api="chat", status="200", cache="miss") == 2
    assert (
        get(
            "lamina_gateway_requests_total",
            key="app",
            model="fast",
            provider="",
            upstream_model="",
            api="chat",
            status="429",
            cache="miss",
        )
        == 1
    )
    assert get("lamina_gateway_tokens_total", **call, type="prompt") == 24
    assert get("lamina_gateway_tokens_total", **call, type="completion") == 10
    assert get("lamina_gateway_tokens_total", **call, type="cached") == 4
    assert get("lamina_gateway_cost_usd_total", **call) == pytest.approx(0.002)
    assert get("lamina_gateway_request_duration_seconds_count", **deployment) == 2
    assert get("lamina_gateway_request_duration_seconds_sum", **deployment) == pytest.approx(1.15)
    assert get("lamina_gateway_request_duration_seconds_bucket", **deployment, le="0.25") == 1
    assert get("lamina_gateway_time_to_first_token_seconds_count", **deployment) == 1
    assert get("lamina_gateway_time_to_first_token_seconds_bucket", **deployment, le="0.05") == 1
    assert (
        get(
            "lamina_gateway_fallbacks_total",
            model="fast",
            provider="claude",
            upstream_model="haiku",
        )
        == 1
    )
    assert get("lamina_gateway_fallbacks_total", **deployment) == 0


def test_live_state_reads_in_flight_and_circuits_when_scraped() -> None:
    registry = CollectorRegistry()
    in_flight = InFlight()
    deployments = [
        {
            "model": "fast",
            "provider": "p",
            "upstream_model": "m",
            "circuit": "half_open",
            "consecutive_failures": 5,
        }
    ]
    registry.register(LiveState(in_flight.by_model, lambda: deployments))
    in_flight.enter("fast")
    in_flight.enter("fast")
    in_flight.leave("fast")
    where = {"model": "fast", "provider": "p", "upstream_model": "m"}
    assert registry.get_sample_value("lamina_gateway_requests_in_flight", {"model": "fast"}) == 1
    assert (
        registry.get_sample_value("lamina_gateway_circuit_state", {**where, "state": "half_open"})
        == 1
    )
    assert (
        registry.get_sample_value("lamina_gateway_circuit_state", {**where, "state": "open"}) == 0
    )
    assert registry.get_sample_value("lamina_gateway_circuit_consecutive_failures", where) == 5
    deployments[0]["circuit"] = "closed"  # read live, not copied
    assert (
        registry.get_sample_value("lamina_gateway_circuit_state", {**where, "state": "closed"}) == 1
    )


def test_each_telemetry_has_its_own_registry() -> None:
    one, two = Telemetry.disabled(), Telemetry.disabled()
    one.observe([record()])
    labels = {
        "key": "app",
        "model": "fast",
        "provider": "openai-main",
        "upstream_model": "gpt-4o-mini",
        "api": "chat",
        "status": "200",
        "cache": "miss",
    }
    assert one.registry.get_sample_value("lamina_gateway_requests_total", labels) == 1
    assert two.registry.get_sample_value("lamina_gateway_requests_total", labels) is None
    assert b"lamina_gateway_requests_total{" in one.exposition()
    assert not one.tracing


# -- spans ----------------------------------------------------------------------------


def test_span_attributes_follow_the_genai_conventions() -> None:
    provider = ProviderConfig(
        name="azure",
        type="openai",
        api_version="2024-10-21",
        base_url="https://contoso.openai.azure.com/openai",
    )
    exchange = Exchange(
        request={
            "model": "fast",
            "temperature": 0,
            "top_p": 1,
            "max_completion_tokens": 64,
            "max_tokens": 10,
            "seed": 7,
            "n": 2,
            "stop": "END",
            "messages": [],
        },
        response={
            "id": "chatcmpl-1",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"finish_reason": "stop"}, {"finish_reason": "length"}],
        },
        provider=provider,
        error=None,
        bodies=None,
    )
    attributes = span_attributes(record(exchange=exchange, ttft_ms=12.5))
    assert span_name(record()) == "chat fast"
    assert span_name(record(api="embeddings")) == "embeddings fast"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert attributes["gen_ai.request.model"] == "fast"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.response.id"] == "chatcmpl-1"
    assert attributes["gen_ai.response.finish_reasons"] == ["stop", "length"]
    assert attributes["gen_ai.request.temperature"] == 0
    assert attributes["gen_ai.request.top_p"] == 1
    assert attributes["gen_ai.request.max_tokens"] == 64  # max_completion_tokens wins
    assert attributes["gen_ai.request.seed"] == 7
    assert attributes["gen_ai.request.choice.count"] == 2
    assert attributes["gen_ai.request.stop_sequences"] == ["END"]
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 2
    assert attributes["server.address"] == "contoso.openai.azure.com"
    assert attributes["server.port"] == 443
    assert attributes["lamina.gateway.time_to_first_token_ms"] == 12.5
    assert "error.type" not in attributes


def test_span_attributes_of_a_refused_call_and_of_a_default_endpoint() -> None:
    bedrock = ProviderConfig(name="aws", type="bedrock", region="eu-west-1")
    exchange = Exchange(
        request={"model": "fast"},
        response=None,
        provider=bedrock,
        error="rate_limit_exceeded",
        bodies=None,
    )
    attributes = span_attributes(record(status=429, exchange=exchange, upstream_model=""))
    assert attributes["error.type"] == "rate_limit_exceeded"
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["server.address"] == "bedrock-runtime.eu-west-1.amazonaws.com"
    assert "gen_ai.response.model" not in attributes
    assert "gen_ai.request.temperature" not in attributes


def test_traces_endpoint_from_config_or_the_standard_variables() -> None:
    none = TelemetryConfig()
    assert traces_endpoint(none, {}) is None
    assert (
        traces_endpoint(none, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"})
        == "http://c:4318/v1/traces"
    )
    assert (
        traces_endpoint(
            none,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x",
            },
        )
        == "http://t/x"
    )
    configured = TelemetryConfig(otlp_endpoint="http://cfg:4318")
    assert (
        traces_endpoint(configured, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"})
        == "http://cfg:4318/v1/traces"
    )
    assert traces_endpoint(configured, {"OTEL_SDK_DISABLED": "true"}) is None
    assert traces_endpoint(configured, {"OTEL_TRACES_EXPORTER": "none"}) is None


def test_the_server_never_imports_the_opentelemetry_sdk_unless_configured() -> None:
    code = (
        "import sys, lamina.app\n"
        "from lamina.gateway.telemetry import Telemetry\n"
        "from lamina.gateway.config import TelemetryConfig\n"
        "assert not Telemetry.start(TelemetryConfig(), {}).tracing\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- bodies ---------------------------------------------------------------------------


def test_secrets_are_redacted_by_name_and_by_shape() -> None:
    body = {
        "api_key": "plain-words",
        "Authorization": "whatever",
        "x-api-key": "k",
        "messages": [
            {"role": "user", "content": "use sk-ant-api03-AAAAAAAAAAAAAAAAAAAA now"},
            {"role": "user", "content": "Bearer abcdefghijklmnopqrstu and AKIAABCDEFGHIJKLMNOP"},
        ],
        "nested": {
            "password": 123,
            "note": "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl end",
        },
        "ok": "lk-short",
    }
    text = logged_body(body, [], 10_000)
    assert text is not None
    out = json.loads(text)
    assert out["api_key"] == out["Authorization"] == out["x-api-key"] == REDACTED
    assert out["nested"]["password"] == REDACTED
    assert out["messages"][0]["content"] == f"use {REDACTED} now"
    assert out["messages"][1]["content"] == f"{REDACTED} and {REDACTED}"
    assert out["nested"]["note"] == f"token {REDACTED} end"
    assert out["ok"] == "lk-short"  # too short to be a key
    assert body["api_key"] == "plain-words"  # a copy: the live request is untouched


def test_configured_paths_and_keys_are_redacted() -> None:
    body = {
        "user": "alice",
        "messages": [
            {"role": "system", "content": "s", "name": "n"},
            {"role": "user", "content": "u"},
        ],
        "metadata": {"customer": "ACME", "user": "bob"},
    }
    out = redact(body, ["user", "messages.*.content", "metadata.customer"])
    assert out["user"] == out["metadata"]["user"] == REDACTED  # a bare key, at any depth
    assert [m["content"] for m in out["messages"]] == [REDACTED, REDACTED]
    assert [m["role"] for m in out["messages"]] == ["system", "user"]
    assert out["metadata"]["customer"] == REDACTED
    assert redact(body, ["messages.1"])["messages"][1] == REDACTED


def test_logged_bodies_drop_private_members_and_are_capped() -> None:
    text = logged_body({"a": "x" * 100, "_native": {"secret": 1}}, [], 1000)
    assert text == '{"a":"' + "x" * 100 + '"}'
    capped = logged_body({"a": "é" * 100}, [], 21)
    assert capped is not None and capped.startswith('{"a":"') and "…[truncated " in capped
    assert logged_body(None, [], 10) is None


# -- config ---------------------------------------------------------------------------


def test_telemetry_and_body_logging_config() -> None:
    raw = {
        "providers": [{"name": "p", "type": "openai"}],
        "models": [{"name": "fast", "routes": [{"provider": "p", "model": "m"}]}],
        "telemetry": {
            "otlp_endpoint": "http://c:4318",
            "headers": {"x-team": "${TEAM}"},
            "service_name": "edge",
            "metrics": {"token": "t", "public": False},
        },
        "log_bodies": {"models": ["fast"], "max_bytes": 100, "redact": ["user"]},
    }
    config = parse_config(raw, {"TEAM": "blue"})
    assert config.telemetry == TelemetryConfig(
        otlp_endpoint="http://c:4318",
        otlp_headers={"x-team": "blue"},
        service_name="edge",
        metrics_token="t",
        metrics_public=False,
    )
    assert config.log_bodies == BodyLogConfig(frozenset({"fast"}), 100, ("user",))
    assert config.log_bodies.covers("fast") and not config.log_bodies.covers("slow")
    assert parse_config({}, {}).log_bodies is None
    every = parse_config({"log_bodies": True}, {}).log_bodies
    assert every is not None and every.covers("anything")
    with pytest.raises(ConfigError, match="unknown models"):
        parse_config({"log_bodies": {"models": ["nope"]}}, {})


def test_span_export_hands_finished_spans_to_the_processor_as_sampled() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
    from opentelemetry.trace import SpanKind, StatusCode

    def exported(provider: TracerProvider) -> list[Any]:
        exporter = InMemorySpanExporter()
        processor = SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        SpanExport(provider, processor).observe([record(), record(status=502, api="embeddings")])
        return list(exporter.get_finished_spans())

    ok, failed = exported(TracerProvider())
    assert (ok.name, failed.name) == ("chat fast", "embeddings fast")
    assert ok.kind is SpanKind.CLIENT and ok.parent is None
    assert ok.end_time == 1_700_000_000 * 10**9
    assert ok.end_time - ok.start_time == 250 * 10**6  # the call's latency
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert ok.attributes is not None and ok.attributes["gen_ai.usage.input_tokens"] == 12
    assert ok.context.trace_id != failed.context.trace_id  # every call its own trace
    assert exported(TracerProvider(sampler=ALWAYS_OFF)) == []
