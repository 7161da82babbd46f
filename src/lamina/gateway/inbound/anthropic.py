"""Anthropic Messages API inbound: a `/v1/messages` request becomes an OpenAI chat
request; the chat answer (whole, or as chunks) becomes an Anthropic message (whole,
or as Anthropic's stream events: message_start, content_block_start/delta/stop,
message_delta, message_stop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from lamina.gateway.errors import InvalidGatewayRequest
from lamina.gateway.providers.anthropic import NATIVE, UNTRANSLATED
from lamina.gateway.providers.base import JSON

# NATIVE: the private member of a chat request carrying the original Anthropic request
# (providers other than Anthropic's drop it), and of an answer carrying Anthropic's own.
NATIVE_FIELDS = frozenset({"system", "messages", "tools", "tool_choice", "temperature",
                           "top_p", "top_k", "stop_sequences", "metadata", "thinking",
                           "service_tier"})

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
    return "".join(parts)


def _part(block: JSON) -> JSON | None:
    """The block in the lingua franca, or None where it has no spelling there."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
        else:
            url = source.get("url", "")
        return {"type": "image_url", "image_url": {"url": url}}
    return None


def _user(content: Any, lost: set[str]) -> list[JSON]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[JSON] = []
    parts: list[JSON] = []
    for block in content or []:
        if block.get("type") == "tool_result":
            result = block.get("content")
            text = _text(result) if not isinstance(result, str) else result
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                        "content": text})
        elif (part := _part(block)) is not None:
            parts.append(part)
        else:
            lost.add(str(block.get("type")))
    if parts:
        simple = all(p["type"] == "text" for p in parts)
        out.append({"role": "user",
                    "content": "".join(p["text"] for p in parts) if simple else parts})
    return out


def _assistant(content: Any) -> JSON:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = []
    calls = []
    for block in content or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function",
                          "function": {"name": block.get("name", ""),
                                       "arguments": orjson.dumps(block.get("input", {})).decode()}})
    message: JSON = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_request(body: JSON, *, counting: bool = False) -> JSON:
    """`counting`: for /v1/messages/count_tokens, which takes no max_tokens."""
    if not isinstance(body.get("messages"), list):
        raise InvalidGatewayRequest("messages: Field required")
    if not counting and not isinstance(body.get("max_tokens"), int):
        raise InvalidGatewayRequest("max_tokens: Field required")
    messages: list[JSON] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    lost: set[str] = set()
    for message in body["messages"]:
        if message.get("role") == "assistant":
            messages.append(_assistant(message.get("content")))
        else:
            messages.extend(_user(message.get("content"), lost))
    out: JSON = {"model": body.get("model"), "messages": messages}
    if not counting:
        out["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("tools"):
        out["tools"] = [{"type": "function", "function": {
            "name": t["name"], "description": t.get("description", ""),
            "parameters": t.get("input_schema") or {"type": "object", "properties": {}}}}
            for t in body["tools"] if "name" in t]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        simple = {"auto": "auto", "any": "required", "none": "none"}
        kind = str(choice.get("type", ""))
        out["tool_choice"] = simple[kind] if kind in simple else {
            "type": "function", "function": {"name": choice.get("name", "")}}
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    # The request as the client wrote it, for a route that lands on Anthropic: it keeps
    # what the lingua franca cannot say (cache_control, top_k, thinking, documents).
    out[NATIVE] = {k: v for k, v in body.items() if k in NATIVE_FIELDS}
    if lost:
        # Only an Anthropic deployment can take these (it gets the native request).
        out[UNTRANSLATED] = sorted(lost)
    return out


def _usage(usage: JSON | None) -> JSON:
    usage = usage or {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {"input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}


def message(completion: JSON, model: str) -> JSON:
    native = completion.get(NATIVE)
    if isinstance(native, dict):
        return native  # served by Anthropic: the message as it sent it
    choice = (completion.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    content: list[JSON] = []
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    for call in msg.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        content.append({"type": "tool_use", "id": call.get("id", ""),
                        "name": function.get("name", ""), "input": arguments})
    return {"id": _message_id(completion.get("id")), "type": "message", "role": "assistant",
            "model": completion.get("model") or model, "content": content,
            "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
            "stop_sequence": None, "usage": _usage(completion.get("usage"))}


def _message_id(raw: Any) -> str:
    raw = str(raw or "")
    return raw if raw.startswith("msg_") else f"msg_{raw}"


def _start(chunk: JSON, model: str) -> JSON:
    return {"type": "message_start", "message": {
        "id": _message_id(chunk.get("id")), "type": "message", "role": "assistant",
        "model": chunk.get("model") or model, "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}}


async def events(chunks: AsyncIterator[JSON], model: str) -> AsyncIterator[JSON]:
    """chat.completion.chunks → Anthropic stream events."""
    started = False
    block: int = -1  # index of the open content block
    kind: str | None = None  # "text" | "tool_use"
    tools: dict[int, int] = {}  # tool call index → content block index
    stop = "end_turn"
    usage: JSON | None = None

    native = False  # served by Anthropic: its events pass through as they came
    async for chunk in chunks:
        if NATIVE in chunk:
            native = True
            yield chunk[NATIVE]
            continue
        if not started:
            started = True
            yield _start(chunk, model)
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if kind != "text":
                    if block >= 0:
                        yield {"type": "content_block_stop", "index": block}
                    block, kind = block + 1, "text"
                    yield {"type": "content_block_start", "index": block,
                           "content_block": {"type": "text", "text": ""}}
                yield {"type": "content_block_delta", "index": block,
                       "delta": {"type": "text_delta", "text": delta["content"]}}
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                function = call.get("function") or {}
                if index not in tools:
                    if block >= 0:
                        yield {"type": "content_block_stop", "index": block}
                    block, kind = block + 1, "tool_use"
                    tools[index] = block
                    yield {"type": "content_block_start", "index": block, "content_block": {
                        "type": "tool_use", "id": call.get("id", ""),
                        "name": function.get("name", ""), "input": {}}}
                if function.get("arguments"):
                    yield {"type": "content_block_delta", "index": tools[index],
                           "delta": {"type": "input_json_delta",
                                     "partial_json": function["arguments"]}}
            if choice.get("finish_reason"):
                stop = STOP_REASONS.get(choice["finish_reason"], "end_turn")
    if native:
        return
    if not started:
        yield _start({}, model)
    if block >= 0:
        yield {"type": "content_block_stop", "index": block}
    totals = _usage(usage)
    yield {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
           "usage": totals}
    yield {"type": "message_stop"}


def error_event(error_type: str, message: str) -> JSON:
    return {"type": "error", "error": {"type": error_type, "message": message}}
