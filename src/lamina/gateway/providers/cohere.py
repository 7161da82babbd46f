"""Cohere API v2: chat (incl. its SSE stream of message-/content-/tool-call- events)
and embed. Cohere's chat messages are close to OpenAI's; the differences are the
content blocks of answers, sampling names (p, k), upper-case tool_choice and finish
reasons, and usage in `tokens` / `billed_units`."""

from __future__ import annotations

from typing import Any

import orjson

from lamina.gateway.errors import InvalidGatewayRequest, UpstreamError
from lamina.gateway.pricing import Usage
from lamina.gateway.providers.base import JSON, Deployment, UpstreamRequest, openai_usage
from lamina.gateway.providers.openai import error_message
from lamina.gateway.sse import Event, EventDecoder

DEFAULT_BASE_URL = "https://api.cohere.com"
FINISH_REASONS = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length",
                  "TOOL_CALL": "tool_calls", "ERROR": "stop", "TIMEOUT": "stop"}


def _message(message: JSON) -> JSON:
    role = message.get("role")
    if role == "developer":
        role = "system"
    out: JSON = {"role": role}
    content = message.get("content")
    if isinstance(content, list):
        out["content"] = [p if p.get("type") != "image_url" else
                          {"type": "image_url", "image_url": {"url": p["image_url"]["url"]
                                                              if isinstance(p["image_url"], dict)
                                                              else p["image_url"]}}
                          for p in content]
    elif content is not None:
        out["content"] = content
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    if role == "tool":
        out["tool_call_id"] = message.get("tool_call_id", "")
    return out


def chat_body(body: JSON, model: str) -> JSON:
    if (body.get("n") or 1) > 1:
        raise InvalidGatewayRequest("n > 1 is not supported by the cohere provider")
    out: JSON = {"model": model, "messages": [_message(m) for m in body.get("messages") or []]}
    names = {"temperature": "temperature", "top_p": "p", "top_k": "k", "seed": "seed",
             "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty"}
    for name, target in names.items():
        if body.get(name) is not None:
            out[target] = body[name]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        out["max_tokens"] = limit
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = [t for t in body["tools"] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    if choice in ("required", "none"):
        out["tool_choice"] = str(choice).upper()
    elif isinstance(choice, dict):
        out["tool_choice"] = "REQUIRED"  # Cohere cannot name the tool; require one
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif response_format.get("type") == "json_schema":
        out["response_format"] = {"type": "json_object", "json_schema":
                                  (response_format.get("json_schema") or {}).get("schema")}
    if body.get("stream"):
        out["stream"] = True
    return out


def usage(raw: JSON | None) -> Usage:
    tokens = (raw or {}).get("tokens") or (raw or {}).get("billed_units") or {}
    return Usage(prompt_tokens=int(tokens.get("input_tokens") or 0),
                 completion_tokens=int(tokens.get("output_tokens") or 0))


def chat_completion(data: JSON, created: int, model: str) -> JSON:
    message = data.get("message") or {}
    text = "".join(block.get("text", "") for block in message.get("content") or []
                   if block.get("type") == "text")
    out: JSON = {"role": "assistant", "content": text or None}
    if message.get("tool_calls"):
        out["tool_calls"] = [{"id": c.get("id", ""), "type": "function",
                              "function": {"name": c["function"]["name"],
                                           "arguments": c["function"].get("arguments", "")}}
                             for c in message["tool_calls"]]
    return {"id": data.get("id", ""), "object": "chat.completion", "created": created,
            "model": model,
            "choices": [{"index": 0, "message": out, "logprobs": None,
                         "finish_reason": FINISH_REASONS.get(data.get("finish_reason") or "",
                                                             "stop")}],
            "usage": openai_usage(usage(data.get("usage")))}


class CohereStream:
    def __init__(self, created: int, model: str) -> None:
        self._created = created
        self._model = model
        self._id = ""
        self._tools: dict[int, int] = {}
        self.usage: Usage | None = None

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model, "choices": [{"index": 0, "delta": delta,
                                                   "logprobs": None, "finish_reason": finish}]}

    def feed(self, event: Event) -> list[JSON]:
        if event.data == "[DONE]":
            return []
        data: JSON = orjson.loads(event.data)
        kind = data.get("type") or event.event
        message: Any = ((data.get("delta") or {}).get("message")) or {}
        if kind == "message-start":
            self._id = data.get("id", "")
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content-delta":
            return [self._chunk({"content": (message.get("content") or {}).get("text", "")})]
        if kind == "tool-call-start":
            call = message.get("tool_calls") or {}
            index = self._tools[data.get("index", 0)] = len(self._tools)
            function = call.get("function") or {}
            return [self._chunk({"tool_calls": [{
                "index": index, "id": call.get("id", ""), "type": "function",
                "function": {"name": function.get("name", ""),
                             "arguments": function.get("arguments", "")}}]})]
        if kind == "tool-call-delta":
            arguments = ((message.get("tool_calls") or {}).get("function") or {}).get(
                "arguments", "")
            index = self._tools.get(data.get("index", 0), 0)
            return [self._chunk({"tool_calls": [{"index": index,
                                                 "function": {"arguments": arguments}}]})]
        if kind == "message-end":
            delta = data.get("delta") or {}
            self.usage = usage(delta.get("usage"))
            final = self._chunk({})
            final["choices"], final["usage"] = [], openai_usage(self.usage)
            reason = FINISH_REASONS.get(delta.get("finish_reason") or "", "stop")
            if delta.get("finish_reason") == "ERROR":
                raise UpstreamError(str(delta.get("error") or "upstream stream error"),
                                    status=502)
            return [self._chunk({}, reason), final]
        return []  # content-start/-end, tool-plan-delta, tool-call-end, citations


class CohereProvider:
    def _request(self, deployment: Deployment, path: str, body: JSON) -> UpstreamRequest:
        config = deployment.provider
        base = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        headers = {"content-type": "application/json", "accept": "application/json"}
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        headers.update(config.headers)
        return UpstreamRequest(f"{base}/v2/{path}", orjson.dumps(body), headers)

    def chat_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        return self._request(deployment, "chat", chat_body(body, deployment.model))

    def chat_response(self, data: JSON, created: int) -> JSON:
        return chat_completion(data, created, "")

    def chat_stream(self, created: int) -> CohereStream:
        return CohereStream(created, "")

    def stream_events(self) -> EventDecoder:
        return EventDecoder()

    def embeddings_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        raw = body.get("input")
        texts = raw if isinstance(raw, list) else [raw]
        if not all(isinstance(t, str) for t in texts):
            raise InvalidGatewayRequest("the cohere provider embeds text inputs only")
        return self._request(deployment, "embed", {
            "model": deployment.model, "texts": texts, "input_type": "search_document",
            "embedding_types": ["float"]})

    def embeddings_response(self, data: JSON) -> JSON:
        vectors = (data.get("embeddings") or {}).get("float") or []
        tokens = int(((data.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
                     or 0)
        return {"object": "list", "model": "",
                "data": [{"object": "embedding", "index": i, "embedding": v}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def count_tokens_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        raise InvalidGatewayRequest("the cohere provider cannot count chat tokens")

    def count_tokens_response(self, data: JSON) -> int:
        raise InvalidGatewayRequest("the cohere provider cannot count chat tokens")

    def error_message(self, status: int, body: bytes) -> str:
        return error_message(status, body)
