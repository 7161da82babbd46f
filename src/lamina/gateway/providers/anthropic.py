"""Anthropic Messages API: OpenAI chat requests in, Anthropic messages out, and back.

Translated: system/developer messages → `system`; image parts → image blocks (base64
data URLs or URLs); assistant tool calls → `tool_use` blocks; `tool` messages →
`tool_result` blocks in a user turn; tools and tool_choice; stop → stop_sequences;
stop reasons and usage (cache reads and writes counted as prompt tokens, as OpenAI
counts them); streaming events → chat.completion.chunks, tool input JSON deltas
included.
"""

from __future__ import annotations

from typing import Any

import orjson

from lamina.gateway.errors import InvalidGatewayRequest, UpstreamError
from lamina.gateway.pricing import Usage
from lamina.gateway.providers.base import JSON, Deployment, UpstreamRequest, openai_usage
from lamina.gateway.providers.openai import error_message
from lamina.gateway.sse import Event, EventDecoder

DEFAULT_BASE_URL = "https://api.anthropic.com"
# Private member: in a request, the original /v1/messages request (inbound/anthropic.py);
# in an answer, Anthropic's own message or stream event, for an Anthropic client.
NATIVE = "_anthropic"
# Private member of a request: Anthropic content block types the lingua franca could
# not carry; only an Anthropic deployment (which gets NATIVE) may serve it.
UNTRANSLATED = "_untranslated"
API_VERSION = "2023-06-01"
# Anthropic requires max_tokens; OpenAI does not. Used when the client sets none.
DEFAULT_MAX_TOKENS = 4096

# Anthropic has no response_format: a JSON schema becomes a forced tool of this name,
# whose input is handed back as the message content.
JSON_TOOL = "lamina_json_output"

STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "stop",
                "model_context_window_exceeded": "length"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def _image(url: str) -> JSON:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                            "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[JSON] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            blocks.append(_image(image if isinstance(image, str) else image.get("url", "")))
        else:
            raise InvalidGatewayRequest(f"content part type {kind!r} is not supported "
                                        "by the anthropic provider")
    return blocks


def _arguments(raw: str) -> Any:
    try:
        return orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {"arguments": raw}


def messages(openai_messages: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    """(system blocks, messages) for a list of OpenAI chat messages."""
    system: list[JSON] = []
    out: list[JSON] = []
    for message in openai_messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_blocks(message.get("content")))
            continue
        if role == "tool":
            block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                     "content": _text(message.get("content"))}
            role, blocks = "user", [block]
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append({"type": "tool_use", "id": call.get("id", ""),
                               "name": function.get("name", ""),
                               "input": _arguments(function.get("arguments", ""))})
        elif role == "user":
            blocks = _blocks(message.get("content"))
        else:
            raise InvalidGatewayRequest(f"message role {role!r} is not supported")
        # Anthropic wants user and assistant turns to alternate: merge neighbours.
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _tool_choice(choice: Any, parallel: Any) -> JSON | None:
    result: JSON | None
    if choice is None:
        result = None if parallel is None else {"type": "auto"}
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        result = {"type": "none"}
    else:
        result = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def chat_body(body: JSON, model: str) -> JSON:
    native = body.get(NATIVE)
    if isinstance(native, dict):
        # An Anthropic request routed to Anthropic: send it as the client wrote it.
        request: JSON = dict(native, model=model,
                             max_tokens=body.get("max_tokens") or DEFAULT_MAX_TOKENS)
        if body.get("stream"):
            request["stream"] = True
        return request
    if (body.get("n") or 1) > 1:
        raise InvalidGatewayRequest("n > 1 is not supported by the anthropic provider")
    system, turns = messages(body.get("messages") or [])
    out: JSON = {"model": model, "messages": turns,
                 "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
                 or DEFAULT_MAX_TOKENS}
    if system:
        out["system"] = system
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format") or {}
    if body.get("tools"):
        out["tools"] = [{"name": t["function"]["name"],
                         "description": t["function"].get("description", ""),
                         "input_schema": t["function"].get("parameters")
                         or {"type": "object", "properties": {}}}
                        for t in body["tools"] if t.get("type") == "function"]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") \
            or {"type": "object"}
        out["tools"] = [*out.get("tools", []), {
            "name": JSON_TOOL, "description": "Answer with JSON matching this schema.",
            "input_schema": schema}]
        out["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
    elif response_format.get("type") == "json_object":
        out["system"] = [*out.get("system", []),
                         {"type": "text", "text": "Answer with a single JSON object only."}]
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def usage(raw: JSON) -> Usage:
    read = int(raw.get("cache_read_input_tokens") or 0)
    written = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(prompt_tokens=int(raw.get("input_tokens") or 0) + read + written,
                 completion_tokens=int(raw.get("output_tokens") or 0),
                 cached_tokens=read, cache_write_tokens=written)


def chat_completion(data: JSON, created: int) -> JSON:
    blocks = data.get("content", [])
    structured = [b for b in blocks if b["type"] == "tool_use" and b["name"] == JSON_TOOL]
    text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
    if structured:
        text = orjson.dumps(structured[0]["input"]).decode()
        data = dict(data, stop_reason="end_turn")
    calls = [{"id": b["id"], "type": "function",
              "function": {"name": b["name"], "arguments": orjson.dumps(b["input"]).decode()}}
             for b in blocks if b["type"] == "tool_use" and b["name"] != JSON_TOOL]
    message: JSON = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": data.get("id", ""), "object": "chat.completion", "created": created,
        "model": data.get("model", ""),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": STOP_REASONS.get(data.get("stop_reason") or "", "stop")}],
        "usage": openai_usage(usage(data.get("usage") or {})),
        # The message as Anthropic sent it, for an Anthropic client (thinking blocks and
        # their signatures included); api/ strips it from every other answer.
        NATIVE: data,
    }


class AnthropicStream:
    """Anthropic stream events → chat.completion.chunks (one choice, index 0)."""

    def __init__(self, created: int) -> None:
        self._created = created
        self._id = ""
        self._model = ""
        self._tools: dict[int, int] = {}  # content block index → tool call index
        self._json: int | None = None  # content block index of the JSON_TOOL answer
        self._raw_usage: JSON = {}
        self.usage: Usage | None = None

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}]}

    def feed(self, event: Event) -> list[JSON]:
        data: JSON = orjson.loads(event.data)
        chunks = self._translate(data)
        # Each event rides along, as sent, for an Anthropic client; an event with no
        # chunk of its own travels in a carrier chunk with no choices.
        if chunks:
            chunks[0][NATIVE] = data
            return chunks
        return [{"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                 "model": self._model, "choices": [], NATIVE: data}]

    def _translate(self, data: JSON) -> list[JSON]:
        kind = data.get("type")
        if kind == "message_start":
            message = data["message"]
            self._id, self._model = message.get("id", ""), message.get("model", "")
            self._raw_usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data["content_block"]
            if block["type"] == "tool_use" and block["name"] == JSON_TOOL:
                self._json = data["index"]
                return []
            if block["type"] == "tool_use":
                index = self._tools[data["index"]] = len(self._tools)
                return [self._chunk({"tool_calls": [{
                    "index": index, "id": block["id"], "type": "function",
                    "function": {"name": block["name"], "arguments": ""}}]})]
            if block["type"] == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                return [self._chunk({"content": delta["text"]})]
            if delta["type"] == "input_json_delta" and data["index"] == self._json:
                return [self._chunk({"content": delta.get("partial_json", "")})]
            if delta["type"] == "input_json_delta" and data["index"] in self._tools:
                return [self._chunk({"tool_calls": [{
                    "index": self._tools[data["index"]],
                    "function": {"arguments": delta.get("partial_json", "")}}]})]
            return []
        if kind == "message_delta":
            self._raw_usage.update({k: v for k, v in (data.get("usage") or {}).items()
                                    if v is not None})
            self.usage = usage(self._raw_usage)
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason == "tool_use" and not self._tools:
                reason = "end_turn"  # only the JSON answer was a "tool"
            return [self._chunk({}, STOP_REASONS.get(reason or "", "stop"))]
        if kind == "message_stop":
            final = self._chunk({})
            final["choices"] = []
            final["usage"] = openai_usage(self.usage or usage(self._raw_usage))
            return [final]
        if kind == "error":
            error = data.get("error") or {}
            status = 529 if error.get("type") == "overloaded_error" else 502
            raise UpstreamError(str(error.get("message", "upstream stream error")),
                                status=status)
        return []  # ping, content_block_stop, and event types added later


class AnthropicProvider:
    def _headers(self, deployment: Deployment) -> dict[str, str]:
        config = deployment.provider
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        headers.update(config.headers)
        return headers

    def chat_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        base = (deployment.provider.base_url or DEFAULT_BASE_URL).rstrip("/")
        return UpstreamRequest(f"{base}/v1/messages",
                               orjson.dumps(chat_body(body, deployment.model)),
                               self._headers(deployment))

    def chat_response(self, data: JSON, created: int) -> JSON:
        return chat_completion(data, created)

    def chat_stream(self, created: int) -> AnthropicStream:
        return AnthropicStream(created)

    def stream_events(self) -> EventDecoder:
        return EventDecoder()

    def embeddings_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        raise InvalidGatewayRequest("the anthropic provider has no embeddings API")

    def embeddings_response(self, data: JSON) -> JSON:
        raise InvalidGatewayRequest("the anthropic provider has no embeddings API")

    def count_tokens_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        base = (deployment.provider.base_url or DEFAULT_BASE_URL).rstrip("/")
        full = chat_body(body, deployment.model)
        counted = {k: v for k, v in full.items()
                   if k in ("model", "messages", "system", "tools", "tool_choice", "thinking")}
        return UpstreamRequest(f"{base}/v1/messages/count_tokens", orjson.dumps(counted),
                               self._headers(deployment))

    def count_tokens_response(self, data: JSON) -> int:
        return int(data.get("input_tokens") or 0)

    def error_message(self, status: int, body: bytes) -> str:
        return error_message(status, body)
