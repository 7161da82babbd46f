"""OpenAI's Responses API spoken natively, for `/v1/responses` requests routed to an
`openai` provider configured with `responses_api: true`: the client's request goes
upstream as written (built-in tools, previous_response_id, reasoning all work), and
the answer comes back as sent; lamina reads a chat completion out of it for its own
accounting, caching and for clients of other dialects."""

from __future__ import annotations

from typing import Any

import orjson

from lamina.gateway.errors import UpstreamError
from lamina.gateway.pricing import Usage
from lamina.gateway.providers.base import JSON, openai_usage
from lamina.gateway.sse import Event

# Private members: in a request, the original /v1/responses request; in an answer, the
# Response or stream event as OpenAI sent it.
NATIVE_RESPONSES = "_responses"
# Private member of a request: what only a native Responses deployment can serve.
NEEDS_RESPONSES = "_needs_responses"


def usage(raw: JSON | None) -> Usage:
    raw = raw or {}
    details = raw.get("input_tokens_details") or {}
    return Usage(prompt_tokens=int(raw.get("input_tokens") or 0),
                 completion_tokens=int(raw.get("output_tokens") or 0),
                 cached_tokens=int(details.get("cached_tokens") or 0))


def _message(output: list[JSON]) -> tuple[JSON, bool]:
    text = "".join(part.get("text", "") for item in output if item.get("type") == "message"
                   for part in item.get("content") or [] if part.get("type") == "output_text")
    calls = [{"id": item.get("call_id", ""), "type": "function",
              "function": {"name": item.get("name", ""),
                           "arguments": item.get("arguments", "")}}
             for item in output if item.get("type") == "function_call"]
    message: JSON = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message, bool(calls)


def _finish(response: JSON, has_calls: bool) -> str:
    if has_calls:
        return "tool_calls"
    reason = (response.get("incomplete_details") or {}).get("reason")
    return "length" if reason == "max_output_tokens" else "stop"


def chat_completion(data: JSON, created: int) -> JSON:
    message, has_calls = _message(data.get("output") or [])
    return {"id": data.get("id", ""), "object": "chat.completion",
            "created": data.get("created_at") or created, "model": data.get("model", ""),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _finish(data, has_calls)}],
            "usage": openai_usage(usage(data.get("usage"))), NATIVE_RESPONSES: data}


class ResponsesStream:
    """Responses stream events → chat.completion.chunks, each event carried along."""

    def __init__(self, created: int) -> None:
        self._created = created
        self._id = ""
        self._model = ""
        self._calls: dict[int, int] = {}  # output index → tool call index
        self.usage: Usage | None = None

    def _chunk(self, delta: JSON | None, finish: str | None = None) -> JSON:
        choices: list[Any] = [] if delta is None else [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model, "choices": choices}

    def feed(self, data: JSON) -> list[JSON]:
        chunk = self._translate(data)
        chunk[NATIVE_RESPONSES] = data
        return [chunk]

    def _translate(self, data: JSON) -> JSON:
        kind = data.get("type")
        if kind == "response.created":
            response = data.get("response") or {}
            self._id, self._model = response.get("id", ""), response.get("model", "")
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "response.output_text.delta":
            return self._chunk({"content": data.get("delta", "")})
        if kind == "response.output_item.added":
            item = data.get("item") or {}
            if item.get("type") == "function_call":
                index = self._calls[data.get("output_index", 0)] = len(self._calls)
                return self._chunk({"tool_calls": [{
                    "index": index, "id": item.get("call_id", ""), "type": "function",
                    "function": {"name": item.get("name", ""), "arguments": ""}}]})
        if kind == "response.function_call_arguments.delta":
            index = self._calls.get(data.get("output_index", 0), 0)
            return self._chunk({"tool_calls": [{"index": index, "function": {
                "arguments": data.get("delta", "")}}]})
        if kind in ("response.completed", "response.incomplete"):
            response = data.get("response") or {}
            self.usage = usage(response.get("usage"))
            final = self._chunk({}, _finish(response, bool(self._calls)))
            final["usage"] = openai_usage(self.usage)
            return final
        if kind in ("response.failed", "error"):
            error = (data.get("response") or {}).get("error") or data
            raise UpstreamError(str(error.get("message") or "upstream stream error"),
                                status=502)
        return self._chunk(None)  # a carrier: nothing of it for chat clients


def is_responses_event(event: Event) -> bool:
    return event.event.startswith("response.") or event.data.startswith('{"type":"response.')


def decode(event: Event) -> JSON:
    data: JSON = orjson.loads(event.data)
    return data
