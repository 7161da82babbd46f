"""Google Gemini API (generateContent / streamGenerateContent, batchEmbedContents).

Translated: system messages → systemInstruction; user/assistant → user/model turns;
images → inline_data (data URLs) or file_data (URLs); assistant tool calls →
functionCall parts, tool results → functionResponse parts (named by the call they
answer); tools, tool_choice, generation settings and response_format; finish
reasons and usageMetadata. Gemini streams whole function calls, one chunk each.
"""

from __future__ import annotations

from typing import Any

import orjson

from lamina.gateway.errors import InvalidGatewayRequest, UpstreamError
from lamina.gateway.pricing import Usage
from lamina.gateway.providers.base import JSON, Deployment, UpstreamRequest, openai_usage
from lamina.gateway.providers.openai import error_message
from lamina.gateway.sse import Event, EventDecoder

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
                  "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
                  "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
                  "IMAGE_SAFETY": "content_filter"}
# JSON Schema keywords Gemini's OpenAPI-subset schemas refuse.
_UNSUPPORTED_SCHEMA = frozenset({"$schema", "additionalProperties", "strict", "$id"})


def _schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _schema(v) for k, v in schema.items() if k not in _UNSUPPORTED_SCHEMA}
    if isinstance(schema, list):
        return [_schema(v) for v in schema]
    return schema


def _parts(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[JSON] = []
    for part in content or []:
        if part.get("type") == "text":
            parts.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image if isinstance(image, str) else image.get("url", "")
            if url.startswith("data:"):
                header, _, data = url.partition(",")
                parts.append({"inline_data": {"mime_type": header[5:].split(";")[0],
                                              "data": data}})
            else:
                parts.append({"file_data": {"mime_type": "image/*", "file_uri": url}})
        else:
            raise InvalidGatewayRequest(f"content part type {part.get('type')!r} is not "
                                        "supported by the gemini provider")
    return parts


def _arguments(raw: str) -> Any:
    try:
        return orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {"arguments": raw}


def contents(messages: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    """(system parts, contents) for OpenAI chat messages."""
    system: list[JSON] = []
    out: list[JSON] = []
    names: dict[str, str] = {}  # tool call id → function name, for functionResponse
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content")))
            continue
        if role == "assistant":
            turn, parts = "model", _parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                names[call.get("id", "")] = function.get("name", "")
                parts.append({"functionCall": {"name": function.get("name", ""),
                                               "args": _arguments(function.get("arguments", ""))}})
        elif role == "tool":
            result = message.get("content")
            text = result if isinstance(result, str) else "".join(
                p.get("text", "") for p in result or [])
            turn = "user"
            parts = [{"functionResponse": {
                "name": names.get(message.get("tool_call_id", ""), message.get("name", "")),
                "response": {"content": text}}}]
        elif role == "user":
            turn, parts = "user", _parts(message.get("content"))
        else:
            raise InvalidGatewayRequest(f"message role {role!r} is not supported")
        if out and out[-1]["role"] == turn:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": turn, "parts": parts})
    return system, out


def _generation_config(body: JSON) -> JSON:
    config: JSON = {}
    names = {"temperature": "temperature", "top_p": "topP", "top_k": "topK", "seed": "seed",
             "n": "candidateCount", "presence_penalty": "presencePenalty",
             "frequency_penalty": "frequencyPenalty"}
    for name, target in names.items():
        if body.get(name) is not None:
            config[target] = body[name]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = _schema(schema)
    return config


def chat_body(body: JSON) -> JSON:
    system, turns = contents(body.get("messages") or [])
    out: JSON = {"contents": turns}
    if system:
        out["systemInstruction"] = {"parts": system}
    if body.get("tools"):
        out["tools"] = [{"functionDeclarations": [
            {"name": t["function"]["name"], "description": t["function"].get("description", ""),
             **({"parameters": _schema(t["function"]["parameters"])}
                if t["function"].get("parameters") else {})}
            for t in body["tools"] if t.get("type") == "function"]}]
    choice = body.get("tool_choice")
    if choice is not None:
        if isinstance(choice, dict):
            mode: JSON = {"mode": "ANY", "allowedFunctionNames": [
                (choice.get("function") or {}).get("name", "")]}
        else:
            mode = {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(
                str(choice), "AUTO")}
        out["toolConfig"] = {"functionCallingConfig": mode}
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    return out


def usage(raw: JSON | None) -> Usage:
    raw = raw or {}
    return Usage(prompt_tokens=int(raw.get("promptTokenCount") or 0),
                 completion_tokens=int(raw.get("candidatesTokenCount") or 0)
                 + int(raw.get("thoughtsTokenCount") or 0),
                 cached_tokens=int(raw.get("cachedContentTokenCount") or 0))


def _message(candidate: JSON, call_base: int) -> tuple[JSON, bool]:
    text: list[str] = []
    calls: list[JSON] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "text" in part and not part.get("thought"):
            text.append(part["text"])
        elif "functionCall" in part:
            call = part["functionCall"]
            calls.append({"id": call.get("id") or f"call_{call_base + len(calls)}",
                          "type": "function",
                          "function": {"name": call.get("name", ""),
                                       "arguments": orjson.dumps(call.get("args", {})).decode()}})
    message: JSON = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    return message, bool(calls)


def _finish(candidate: JSON, has_calls: bool) -> str | None:
    reason = candidate.get("finishReason")
    if reason is None:
        return None
    return "tool_calls" if has_calls and reason == "STOP" else FINISH_REASONS.get(reason, "stop")


def chat_completion(data: JSON, created: int, model: str) -> JSON:
    choices = []
    for i, candidate in enumerate(data.get("candidates") or []):
        message, has_calls = _message(candidate, 0)
        choices.append({"index": candidate.get("index", i), "message": message,
                        "logprobs": None, "finish_reason": _finish(candidate, has_calls) or "stop"})
    return {"id": data.get("responseId", ""), "object": "chat.completion", "created": created,
            "model": data.get("modelVersion") or model, "choices": choices,
            "usage": openai_usage(usage(data.get("usageMetadata")))}


class GeminiStream:
    def __init__(self, created: int, model: str) -> None:
        self._created = created
        self._model = model
        self._started = False
        self._calls = 0
        self._saw_calls = False
        self.usage: Usage | None = None

    def feed(self, event: Event) -> list[JSON]:
        data: JSON = orjson.loads(event.data)
        if "error" in data:
            error = data["error"] or {}
            raise UpstreamError(str(error.get("message", "upstream stream error")),
                                status=int(error.get("code") or 502))
        head = {"id": data.get("responseId", ""), "object": "chat.completion.chunk",
                "created": self._created, "model": data.get("modelVersion") or self._model}
        chunks: list[JSON] = []
        for candidate in data.get("candidates") or []:
            message, has_calls = _message(candidate, self._calls)
            delta: JSON = {}
            if not self._started:
                delta["role"] = "assistant"
                self._started = True
            if message.get("content"):
                delta["content"] = message["content"]
            if has_calls:
                delta["tool_calls"] = [dict(call, index=self._calls + i)
                                       for i, call in enumerate(message["tool_calls"])]
                self._calls += len(message["tool_calls"])
                self._saw_calls = True
            finish = _finish(candidate, self._saw_calls)
            if delta or finish:
                chunks.append(dict(head, choices=[{"index": candidate.get("index", 0),
                                                   "delta": delta, "logprobs": None,
                                                   "finish_reason": finish}]))
        if data.get("usageMetadata"):
            self.usage = usage(data["usageMetadata"])
            if any(c.get("finishReason") for c in data.get("candidates") or []):
                chunks.append(dict(head, choices=[], usage=openai_usage(self.usage)))
        return chunks


class GeminiProvider:
    def _request(self, deployment: Deployment, method: str, body: JSON,
                 query: str = "") -> UpstreamRequest:
        config = deployment.provider
        base = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        headers = {"content-type": "application/json"}
        if config.api_key:
            headers["x-goog-api-key"] = config.api_key
        headers.update(config.headers)
        return UpstreamRequest(f"{base}/models/{deployment.model}:{method}{query}",
                               orjson.dumps(body), headers)

    def chat_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        if body.get("stream"):
            return self._request(deployment, "streamGenerateContent", chat_body(body),
                                 "?alt=sse")
        return self._request(deployment, "generateContent", chat_body(body))

    def chat_response(self, data: JSON, created: int) -> JSON:
        return chat_completion(data, created, "")

    def chat_stream(self, created: int) -> GeminiStream:
        return GeminiStream(created, "")

    def stream_events(self) -> EventDecoder:
        return EventDecoder()

    def embeddings_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        raw = body.get("input")
        inputs = raw if isinstance(raw, list) else [raw]
        if not all(isinstance(i, str) for i in inputs):
            raise InvalidGatewayRequest("the gemini provider embeds text inputs only")
        requests = [{"model": f"models/{deployment.model}", "content": {"parts": [{"text": i}]}}
                    for i in inputs]
        if body.get("dimensions"):
            for request in requests:
                request["outputDimensionality"] = body["dimensions"]
        return self._request(deployment, "batchEmbedContents", {"requests": requests})

    def embeddings_response(self, data: JSON) -> JSON:
        return {"object": "list", "model": "",
                "data": [{"object": "embedding", "index": i, "embedding": e.get("values", [])}
                         for i, e in enumerate(data.get("embeddings") or [])],
                "usage": {"prompt_tokens": 0, "total_tokens": 0}}

    def count_tokens_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        request = dict(chat_body(body), model=f"models/{deployment.model}")
        return self._request(deployment, "countTokens", {"generateContentRequest": request})

    def count_tokens_response(self, data: JSON) -> int:
        return int(data.get("totalTokens") or 0)

    def error_message(self, status: int, body: bytes) -> str:
        return error_message(status, body)
