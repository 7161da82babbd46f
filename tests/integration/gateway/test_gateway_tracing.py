"""OpenTelemetry spans of gateway calls, exported by a real `lamina serve` over
OTLP/HTTP to a real receiver on loopback, decoded with opentelemetry-proto."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.integration.gateway.gateway_mocks import Fault, serve
from tests.integration.gateway.harness import APP_KEY, Mocks, base_config, lamina_serving
from tests.integration.support import SECRET_KEY

pytestmark = pytest.mark.slow


class Receiver:
    """An OTLP/HTTP trace receiver: POST /v1/traces with a protobuf body."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.content_types: list[str] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/traces", self.traces, methods=["POST"])])

    async def traces(self, request: Request) -> Response:
        self.content_types.append(request.headers.get("content-type", ""))
        export = ExportTraceServiceRequest.FromString(await request.body())
        for resource_spans in export.resource_spans:
            self.resources.append(_attributes(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "kind": span.kind,
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "status": span.status.code,
                            "parent": span.parent_span_id,
                            "attributes": _attributes(span.attributes),
                        }
                    )
        return Response(
            ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
        )


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return MessageToDict(value)[
        {
            "string_value": "stringValue",
            "int_value": "intValue",
            "bool_value": "boolValue",
            "double_value": "doubleValue",
        }[kind or "string_value"]
    ]


def _attributes(pairs: Any) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        value = _value(pair.value)
        out[pair.key] = int(value) if pair.value.WhichOneof("value") == "int_value" else value
    return out


async def test_lamina_serve_exports_genai_spans_over_otlp(tmp_path: Path, mocks: Mocks) -> None:
    receiver = Receiver()
    otel = {
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "gateway-under-test",
    }
    async with (
        serve(receiver.app()) as collector,
        lamina_serving(
            tmp_path, base_config(mocks), {**otel, "OTEL_EXPORTER_OTLP_ENDPOINT": collector}
        ) as server,
    ):
        oa = openai.AsyncOpenAI(base_url=f"{server.endpoint}/v1", api_key=APP_KEY, max_retries=0)
        an = anthropic.AsyncAnthropic(base_url=server.endpoint, api_key=APP_KEY, max_retries=0)
        began = time.time_ns()
        chat = await oa.chat.completions.create(
            model="gpt",
            messages=[{"role": "user", "content": "hello"}],
            temperature=0.2,
            top_p=0.9,
            max_tokens=20,
            stop=["END"],
        )
        async with an.messages.stream(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            await stream.get_final_message()
        await oa.embeddings.create(model="embed", input=["a", "b"])
        mocks.openai.fail(Fault(400, body={"error": {"message": "bad", "type": "x"}}))
        with pytest.raises(openai.BadRequestError):
            await oa.chat.completions.create(
                model="gpt", messages=[{"role": "user", "content": "refused"}]
            )
        ended = time.time_ns()
        for _ in range(100):  # the writer batches, the SDK exports every 100 ms
            if len(receiver.spans) >= 4:
                break
            await asyncio.sleep(0.1)
        # The same records feed the metrics, served through lamina's own app.
        async with httpx.AsyncClient(base_url=server.endpoint) as http:
            metrics = await http.get(
                "/gateway/metrics", headers={"authorization": f"Bearer {SECRET_KEY}"}
            )
        await oa.close()
        await an.close()

    assert len(receiver.spans) == 4, receiver.spans
    assert metrics.status_code == 200
    requests = {
        (sample.labels["model"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(metrics.text)
        for sample in family.samples
        if sample.name == "lamina_gateway_requests_total"
    }
    assert requests == {("gpt", "200"): 1, ("gpt", "400"): 1, ("claude", "200"): 1,
                        ("embed", "200"): 1}  # fmt: skip
    assert all(t == "application/x-protobuf" for t in receiver.content_types)
    assert receiver.resources[0]["service.name"] == "gateway-under-test"
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in receiver.spans:
        by_name.setdefault(span["name"], []).append(span)
    assert sorted(by_name) == ["chat claude", "chat gpt", "embeddings embed"]
    ok, refused = sorted(by_name["chat gpt"], key=lambda s: s["start"])

    a = ok["attributes"]
    assert ok["kind"] == 3  # SPAN_KIND_CLIENT
    assert ok["parent"] == b""  # a root span
    assert began <= ok["start"] < ok["end"] <= ended
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "gpt"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.id"] == chat.id == "chatcmpl-mock"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 20
    assert a["gen_ai.request.stop_sequences"] == ["END"]
    assert a["gen_ai.usage.input_tokens"] == 12 and a["gen_ai.usage.output_tokens"] == 5
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == int(mocks.openai_url.rsplit(":", 1)[1])
    assert a["lamina.gateway.key"] == "app" and a["lamina.gateway.cost_usd"] > 0
    assert "error.type" not in a and ok["status"] == 0  # STATUS_CODE_UNSET

    r = refused["attributes"]
    assert r["error.type"] == "upstream_error" and r["lamina.gateway.status"] == 400
    assert refused["status"] == 2  # STATUS_CODE_ERROR

    (claude,) = by_name["chat claude"]
    c = claude["attributes"]
    assert c["gen_ai.provider.name"] == "anthropic"
    assert c["gen_ai.response.model"] == "claude-3-5-haiku-latest"
    assert c["gen_ai.request.max_tokens"] == 10
    assert c["gen_ai.response.finish_reasons"] == ["stop"]
    assert c["lamina.gateway.api"] == "messages" and c["lamina.gateway.stream"] is True
    assert c["lamina.gateway.time_to_first_token_ms"] > 0

    (embed,) = by_name["embeddings embed"]
    assert embed["attributes"]["gen_ai.operation.name"] == "embeddings"
    assert embed["attributes"]["gen_ai.usage.input_tokens"] == 6
