"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio,
Mistral, Groq, Together, DeepSeek, OpenRouter) by base URL, and Azure OpenAI (its
deployment paths and `api-version` when `api_version` is configured).

The lingua franca is OpenAI's own shape, so requests and answers pass through; the
only changes are the model name and always asking for usage when streaming (lamina
accounts every call; the usage chunk is withheld from clients that did not ask)."""

from __future__ import annotations

import orjson

from lamina.gateway.errors import InvalidGatewayRequest, UpstreamError
from lamina.gateway.pricing import Usage
from lamina.gateway.providers.base import JSON, Deployment, UpstreamRequest, usage_of
from lamina.gateway.providers.openai_responses import (
    NATIVE_RESPONSES,
    ResponsesStream,
    decode,
    is_responses_event,
)
from lamina.gateway.providers.openai_responses import chat_completion as responses_completion
from lamina.gateway.sse import Event, EventDecoder

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIStream:
    def __init__(self, created: int = 0) -> None:
        self._created = created
        self._responses: ResponsesStream | None = None  # a native Responses stream
        self.usage: Usage | None = None

    def feed(self, event: Event) -> list[JSON]:
        if event.data == "[DONE]":
            return []
        if self._responses is not None or is_responses_event(event):
            self._responses = self._responses or ResponsesStream(self._created)
            chunks = self._responses.feed(decode(event))
            self.usage = self._responses.usage
            return chunks
        return self._chunk(orjson.loads(event.data))

    def feed_data(self, data: bytes) -> list[JSON] | None:
        """`feed` for an event that is a lone `data:` line, from its bytes, where the
        chunk it returns is those bytes as sent (so the relay may pass them on); None
        for an event that is no chat chunk (a Responses API event): give that to `feed`."""
        if self._responses is not None or data.startswith(b'{"type":"response.'):
            return None
        if data == b"[DONE]":
            return []
        return self._chunk(orjson.loads(data))

    def _chunk(self, chunk: JSON) -> list[JSON]:
        if "error" in chunk and "choices" not in chunk:
            message = str((chunk.get("error") or {}).get("message", "upstream stream error"))
            raise UpstreamError(message, status=502)
        if chunk.get("usage"):
            self.usage = usage_of(chunk["usage"])
        return [chunk]


class OpenAIProvider:
    def _url(self, deployment: Deployment, operation: str) -> str:
        config = deployment.provider
        base = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        if config.api_version:
            return (f"{base}/openai/deployments/{deployment.model}/{operation}"
                    f"?api-version={config.api_version}")
        return f"{base}/{operation}"

    def _headers(self, deployment: Deployment) -> dict[str, str]:
        config = deployment.provider
        headers = {"content-type": "application/json"}
        if config.api_key:
            if config.api_version:
                headers["api-key"] = config.api_key
            else:
                headers["authorization"] = f"Bearer {config.api_key}"
        headers.update(config.headers)
        return headers

    def chat_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        native = body.get(NATIVE_RESPONSES)
        if isinstance(native, dict) and deployment.provider.responses_api:
            request = dict(native, model=deployment.model)
            if body.get("stream"):
                request["stream"] = True
            return UpstreamRequest(self._url(deployment, "responses"), orjson.dumps(request),
                                   self._headers(deployment))
        # Members starting with "_" are lamina's own (e.g. a native Anthropic request).
        upstream = {k: v for k, v in body.items() if not k.startswith("_")}
        upstream["model"] = deployment.model
        if upstream.get("stream"):
            upstream["stream_options"] = dict(upstream.get("stream_options") or {},
                                              include_usage=True)
        return UpstreamRequest(self._url(deployment, "chat/completions"),
                               orjson.dumps(upstream), self._headers(deployment))

    def chat_response(self, data: JSON, created: int) -> JSON:
        if data.get("object") == "response":
            return responses_completion(data, created)
        data.setdefault("object", "chat.completion")
        data.setdefault("created", created)
        return data

    def chat_stream(self, created: int) -> OpenAIStream:
        return OpenAIStream(created)

    def stream_events(self) -> EventDecoder:
        return EventDecoder()

    def embeddings_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        upstream = dict(body, model=deployment.model)
        return UpstreamRequest(self._url(deployment, "embeddings"),
                               orjson.dumps(upstream), self._headers(deployment))

    def embeddings_response(self, data: JSON) -> JSON:
        return data

    def count_tokens_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        raise InvalidGatewayRequest("OpenAI-compatible providers cannot count tokens; "
                                    f"model {deployment.model!r} has no token counting")

    def count_tokens_response(self, data: JSON) -> int:
        raise InvalidGatewayRequest("OpenAI-compatible providers cannot count tokens")

    def error_message(self, status: int, body: bytes) -> str:
        return error_message(status, body)


def error_message(status: int, body: bytes) -> str:
    """The message of an OpenAI- or Anthropic-shaped error body, else its text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or f"upstream answered {status}"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return f"upstream answered {status}"
