"""One OpenTelemetry span per gateway call, with the GenAI semantic conventions,
exported over OTLP/HTTP — only when an endpoint is configured.

Spans are made from the call records in the accounting writer's batches, with the
call's real start and end times: the request path does no tracing work at all, and a
gateway without an endpoint never imports the OpenTelemetry SDK (it costs ~0.3 s of
start-up and a thread). The price: a span cannot be the parent of the upstream
request, since it does not exist while that request is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from lamina.gateway.config import ProviderConfig, TelemetryConfig
from lamina.gateway.providers import anthropic, cohere, gemini, openai
from lamina.gateway.usage import UsageRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

Attributes = dict[str, str | bool | int | float | Sequence[str]]

# gen_ai.provider.name's well-known values, by provider type.
_PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "cohere": "cohere",
    "local-embeddings": "lamina.local_embeddings",
}
_DEFAULT_URLS = {
    "openai": openai.DEFAULT_BASE_URL,
    "anthropic": anthropic.DEFAULT_BASE_URL,
    "gemini": gemini.DEFAULT_BASE_URL,
    "cohere": cohere.DEFAULT_BASE_URL,
}
# OpenAI request member → gen_ai.request.* attribute.
_REQUEST_NUMBERS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
}


def traces_endpoint(config: TelemetryConfig, env: Mapping[str, str]) -> str | None:
    """Where spans go: the config's endpoint, else the standard OTEL_* variables."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return None
    if config.otlp_endpoint:
        return f"{config.otlp_endpoint.rstrip('/')}/v1/traces"
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]  # a signal's own URL is used as is
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return f"{env['OTEL_EXPORTER_OTLP_ENDPOINT'].rstrip('/')}/v1/traces"
    return None


def _headers(config: TelemetryConfig, env: Mapping[str, str]) -> dict[str, str]:
    if config.otlp_headers:
        return dict(config.otlp_headers)
    raw = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")
    headers = {}
    for pair in (raw or "").split(","):
        name, sep, value = pair.partition("=")
        if sep and name.strip():
            headers[unquote(name.strip())] = unquote(value.strip())
    return headers


def span_name(record: UsageRecord) -> str:
    return f"{_operation(record)} {record.model}"


def _operation(record: UsageRecord) -> str:
    return "embeddings" if record.api == "embeddings" else "chat"


def span_attributes(record: UsageRecord) -> Attributes:
    """The span's attributes: GenAI semantic conventions, then lamina's own."""
    attributes: Attributes = {
        "gen_ai.operation.name": _operation(record),
        "gen_ai.request.model": record.model,
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
        "lamina.gateway.key": record.key_name,
        "lamina.gateway.api": record.api,
        "lamina.gateway.status": record.status,
        "lamina.gateway.cost_usd": record.cost_usd,
        "lamina.gateway.cache_hit": record.cache_hit,
        "lamina.gateway.fallback": record.fallback,
        "lamina.gateway.stream": record.stream,
    }
    if record.cached_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
    if record.ttft_ms is not None:
        attributes["lamina.gateway.time_to_first_token_ms"] = record.ttft_ms
    if record.provider:
        attributes["lamina.gateway.provider"] = record.provider
    exchange = record.exchange
    if exchange is None:
        return attributes
    if exchange.provider is not None:
        attributes.update(_provider_attributes(exchange.provider))
    if exchange.error is not None:
        attributes["error.type"] = exchange.error
    attributes.update(_request_attributes(exchange.request))
    response = exchange.response
    if response is not None:
        attributes.update(_response_attributes(response))
    if "gen_ai.response.model" not in attributes and record.upstream_model:
        attributes["gen_ai.response.model"] = record.upstream_model
    return attributes


def _provider_attributes(provider: ProviderConfig) -> Attributes:
    name = _PROVIDER_NAMES.get(provider.type, provider.type)
    if provider.type == "openai" and provider.api_version:
        name = "azure.ai.openai"
    attributes: Attributes = {"gen_ai.provider.name": name, "gen_ai.system": name}
    url = provider.base_url or _DEFAULT_URLS.get(provider.type)
    if provider.type == "bedrock" and not url:
        url = f"https://bedrock-runtime.{provider.region or 'us-east-1'}.amazonaws.com"
    if url:
        parts = urlsplit(url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return attributes


def _request_attributes(request: Mapping[str, Any]) -> Attributes:
    attributes: Attributes = {}
    for member, name in _REQUEST_NUMBERS.items():
        value = request.get(member)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[name] = value
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool):
        attributes["gen_ai.request.max_tokens"] = limit
    stop = request.get("stop")
    if isinstance(stop, str):
        attributes["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = stop
    return attributes


def _response_attributes(response: Mapping[str, Any]) -> Attributes:
    attributes: Attributes = {}
    if isinstance(response.get("id"), str):
        attributes["gen_ai.response.id"] = response["id"]
    if isinstance(response.get("model"), str) and response["model"]:
        attributes["gen_ai.response.model"] = response["model"]
    choices = response.get("choices")
    if isinstance(choices, list):
        reasons = [
            str(c["finish_reason"])
            for c in choices
            if isinstance(c, dict) and c.get("finish_reason")
        ]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
    return attributes


class SpanExport:
    """Turns call records into finished spans for the SDK's batch processor, which
    exports them from its own thread.

    A span is built whole as the SDK's `ReadableSpan` and handed to the processor,
    rather than started and ended through a tracer: the tracer re-checks every
    attribute (~85 µs a span here, against ~25 µs), and a finished call has nothing
    to add. The provider's sampler (OTEL_TRACES_SAMPLER) still decides which calls
    are kept."""

    def __init__(self, provider: TracerProvider, processor: SpanProcessor) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self._provider = provider
        self._processor = processor
        self._ids = RandomIdGenerator()
        self._scope = InstrumentationScope("lamina.gateway")
        self._kind = SpanKind.CLIENT
        self._sampled = TraceFlags(TraceFlags.SAMPLED)
        self._ok = Status(StatusCode.UNSET)
        self._sample = Decision.RECORD_AND_SAMPLE
        self._types = (ReadableSpan, SpanContext, Status, StatusCode.ERROR)

    def observe(self, records: Sequence[UsageRecord]) -> None:
        readable, context, status, error = self._types
        sampler, resource = self._provider.sampler, self._provider.resource
        for record in records:
            name, attributes = span_name(record), span_attributes(record)
            trace_id = self._ids.generate_trace_id()
            decision = sampler.should_sample(None, trace_id, name, self._kind, attributes)
            if decision.decision is not self._sample:
                continue
            end = int(record.ts * 1e9)
            failed = record.status >= 400
            span = readable(
                name,
                context(trace_id, self._ids.generate_span_id(), False, self._sampled),
                resource=resource,
                attributes=attributes,
                kind=self._kind,
                status=status(error, f"HTTP {record.status}") if failed else self._ok,
                start_time=end - int(record.latency_ms * 1e6),
                end_time=end,
                instrumentation_scope=self._scope,
            )
            self._processor.on_end(span)

    def shutdown(self) -> None:
        """Blocking: exports what is queued (a thread's work; see Telemetry.close)."""
        self._provider.shutdown()


def otlp_export(config: TelemetryConfig, env: Mapping[str, str]) -> SpanExport | None:
    """An OTLP/HTTP span exporter when one is configured, else None (and no import)."""
    endpoint = traces_endpoint(config, env)
    if endpoint is None:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    delay = env.get("OTEL_BSP_SCHEDULE_DELAY")
    service = env.get("OTEL_SERVICE_NAME") or config.service_name
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=_headers(config, env))
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=float(delay) if delay else None)
    provider.add_span_processor(processor)  # so that shutting the provider flushes it
    return SpanExport(provider, processor)
