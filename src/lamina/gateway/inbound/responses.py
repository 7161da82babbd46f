"""OpenAI Responses API inbound (`/v1/responses`, stateless): a request becomes a chat
request; the chat answer becomes a Response object, or the Responses stream events
(response.created … output_text.delta … function_call_arguments.delta …
response.completed), each with its sequence_number."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lamina.gateway.errors import InvalidGatewayRequest
from lamina.gateway.folding import Folder
from lamina.gateway.providers.base import JSON
from lamina.gateway.providers.openai_responses import NATIVE_RESPONSES, NEEDS_RESPONSES


def _content(content: Any) -> Any:
    if isinstance(content, str):
        return content
    parts: list[JSON] = []
    for part in content or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise InvalidGatewayRequest(f"input content type {kind!r} is not supported")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _messages(body: JSON) -> list[JSON]:
    messages: list[JSON] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    raw = body.get("input")
    if isinstance(raw, str):
        return [*messages, {"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise InvalidGatewayRequest("'input' is required (a string or a list of items)")
    for item in raw:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role", "user"),
                             "content": _content(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item.get("call_id", ""), "type": "function",
                    "function": {"name": item.get("name", ""),
                                 "arguments": item.get("arguments", "")}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id", ""),
                             "content": output if isinstance(output, str) else str(output)})
        elif kind != "reasoning":
            raise InvalidGatewayRequest(f"input item type {kind!r} is not supported")
    return messages


def chat_request(body: JSON) -> JSON:
    """The request in the lingua franca, with the original beside it (NATIVE_RESPONSES)
    for an OpenAI deployment that speaks the Responses API; what only such a deployment
    can serve is listed under NEEDS_RESPONSES."""
    needs: list[str] = []
    if body.get("previous_response_id"):
        needs.append("previous_response_id")
    try:
        messages = _messages(body)
    except InvalidGatewayRequest as exc:
        needs.append(exc.message)
        messages = []
    out: JSON = {"model": body.get("model"), "messages": messages}
    if body.get("max_output_tokens"):
        out["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if body.get(name) is not None:
            out[name] = body[name]
    tools = []
    for tool in body.get("tools") or []:
        if tool.get("type") != "function":
            needs.append(f"tool type {tool.get('type')!r}")
            continue
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict")
                    if tool.get(k) is not None}
        tools.append({"type": "function", "function": function})
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif isinstance(choice, str):
        out["tool_choice"] = choice
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        out["response_format"] = {"type": "json_schema", "json_schema": {
            k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}}
    elif fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    out[NATIVE_RESPONSES] = {k: v for k, v in body.items() if k not in ("model", "stream")}
    if needs:
        out[NEEDS_RESPONSES] = needs
    return out


def _usage(usage: JSON | None) -> JSON:
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), \
        int(usage.get("completion_tokens") or 0)
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": int(details.get("cached_tokens") or 0)},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def _text_item(item_id: str, text: str, status: str = "completed") -> JSON:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]
            if status == "completed" else []}


def _call_item(call: JSON, status: str = "completed") -> JSON:
    function = call.get("function") or {}
    return {"type": "function_call", "id": f"fc_{call.get('id', '')}",
            "call_id": call.get("id", ""), "name": function.get("name", ""),
            "arguments": function.get("arguments", "") if status == "completed" else "",
            "status": status}


def response(completion: JSON, request: JSON, *, status: str = "completed") -> JSON:
    native = completion.get(NATIVE_RESPONSES)
    if isinstance(native, dict) and status == "completed":
        return native  # served natively: the Response as OpenAI sent it
    base_id = str(completion.get("id") or "")
    output: list[JSON] = []
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    if message.get("content"):
        output.append(_text_item(f"msg_{base_id}", message["content"]))
    output += [_call_item(call) for call in message.get("tool_calls") or []]
    incomplete = choice.get("finish_reason") == "length" and status == "completed"
    return {
        "id": f"resp_{base_id}", "object": "response",
        "created_at": completion.get("created", 0),
        "status": "incomplete" if incomplete else status,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "error": None, "model": completion.get("model") or request.get("model"),
        "output": output, "usage": _usage(completion.get("usage")) if status != "in_progress"
        else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "temperature": request.get("temperature"), "top_p": request.get("top_p"),
        "tool_choice": request.get("tool_choice", "auto"), "tools": request.get("tools") or [],
        "text": request.get("text") or {"format": {"type": "text"}},
        "previous_response_id": None, "reasoning": None, "store": False,
        "truncation": "disabled", "metadata": request.get("metadata") or {},
        "user": request.get("user"),
    }


class _Sequence:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, event: JSON) -> JSON:
        event["sequence_number"] = self.n
        self.n += 1
        return event


async def events(chunks: AsyncIterator[JSON], request: JSON) -> AsyncIterator[JSON]:
    """chat.completion.chunks → Responses stream events."""
    seq = _Sequence()
    folder = Folder()
    started = False
    text: list[str] = []
    text_index: int | None = None  # output index of the open message item
    calls: dict[int, tuple[int, JSON]] = {}  # tool call index → (output index, call)
    outputs = 0
    item_id = ""

    def close_text() -> list[JSON]:
        nonlocal text_index
        if text_index is None:
            return []
        full = "".join(text)
        part = {"type": "output_text", "text": full, "annotations": []}
        done = [
            seq({"type": "response.output_text.done", "item_id": item_id,
                 "output_index": text_index, "content_index": 0, "text": full,
                 "logprobs": []}),
            seq({"type": "response.content_part.done", "item_id": item_id,
                 "output_index": text_index, "content_index": 0, "part": part}),
            seq({"type": "response.output_item.done", "output_index": text_index,
                 "item": _text_item(item_id, full)})]
        text_index = None
        return done

    native = False  # served natively: OpenAI's events pass through as they came
    async for chunk in chunks:
        if NATIVE_RESPONSES in chunk:
            native = True
            yield chunk[NATIVE_RESPONSES]
            continue
        folder.feed(chunk)
        if not started:
            started = True
            item_id = f"msg_{chunk.get('id', '')}"
            head = response(dict(chunk, choices=[]), request, status="in_progress")
            yield seq({"type": "response.created", "response": head})
            yield seq({"type": "response.in_progress", "response": head})
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if text_index is None:
                    text_index, outputs = outputs, outputs + 1
                    yield seq({"type": "response.output_item.added", "output_index": text_index,
                               "item": _text_item(item_id, "", "in_progress")})
                    yield seq({"type": "response.content_part.added", "item_id": item_id,
                               "output_index": text_index, "content_index": 0,
                               "part": {"type": "output_text", "text": "", "annotations": []}})
                text.append(delta["content"])
                yield seq({"type": "response.output_text.delta", "item_id": item_id,
                           "output_index": text_index, "content_index": 0,
                           "delta": delta["content"], "logprobs": []})
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                if index not in calls:
                    for event in close_text():
                        yield event
                    calls[index] = (outputs, {"id": call.get("id", ""), "function": {
                        "name": (call.get("function") or {}).get("name", ""),
                        "arguments": ""}})
                    outputs += 1
                    yield seq({"type": "response.output_item.added",
                               "output_index": calls[index][0],
                               "item": _call_item(calls[index][1], "in_progress")})
                position, state = calls[index]
                piece = (call.get("function") or {}).get("arguments") or ""
                if piece:
                    state["function"]["arguments"] += piece
                    yield seq({"type": "response.function_call_arguments.delta",
                               "item_id": f"fc_{state['id']}", "output_index": position,
                               "delta": piece})
    if native:
        return
    for event in close_text():
        yield event
    for position, state in calls.values():
        yield seq({"type": "response.function_call_arguments.done",
                   "item_id": f"fc_{state['id']}", "output_index": position,
                   "arguments": state["function"]["arguments"]})
        yield seq({"type": "response.output_item.done", "output_index": position,
                   "item": _call_item(state)})
    final = response(folder.completion(), request)
    kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    yield seq({"type": kind, "response": final})


def error_event(code: str, message: str) -> JSON:
    return {"type": "error", "code": code, "message": message, "param": None}
