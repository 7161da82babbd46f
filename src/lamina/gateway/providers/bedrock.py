"""Amazon Bedrock Converse / ConverseStream, signed with SigV4 (or a Bedrock API key).

Translated: system messages → `system`; turns → `messages` with text, image (base64
data URLs), toolUse and toolResult blocks; tools → toolConfig; generation settings →
inferenceConfig; stop reasons and usage. ConverseStream answers in AWS's binary
event-stream framing, decoded with botocore's parser; its events (messageStart,
contentBlockStart/Delta/Stop, messageStop, metadata) become chat.completion.chunks.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from lamina.gateway.errors import InvalidGatewayRequest, UpstreamError
from lamina.gateway.pricing import Usage
from lamina.gateway.providers.base import JSON, Deployment, UpstreamRequest, openai_usage
from lamina.gateway.providers.openai import error_message
from lamina.gateway.sse import Event

STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                "tool_use": "tool_calls", "guardrail_intervened": "content_filter",
                "content_filtered": "content_filter"}


def _blocks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[JSON] = []
    for part in content or []:
        if part.get("type") == "text":
            blocks.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image if isinstance(image, str) else image.get("url", "")
            if not url.startswith("data:"):
                raise InvalidGatewayRequest("the bedrock provider takes images as data URLs")
            header, _, data = url.partition(",")
            fmt = header[5:].split(";")[0].split("/")[-1]
            blocks.append({"image": {"format": fmt, "source": {"bytes": data}}})
        else:
            raise InvalidGatewayRequest(f"content part type {part.get('type')!r} is not "
                                        "supported by the bedrock provider")
    return blocks


def _arguments(raw: str) -> Any:
    try:
        return orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {"arguments": raw}


def converse_body(body: JSON) -> JSON:
    if (body.get("n") or 1) > 1:
        raise InvalidGatewayRequest("n > 1 is not supported by the bedrock provider")
    system: list[JSON] = []
    messages: list[JSON] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_blocks(message.get("content")))
            continue
        if role == "tool":
            content = message.get("content")
            text = content if isinstance(content, str) else "".join(
                p.get("text", "") for p in content or [])
            role, blocks = "user", [{"toolResult": {
                "toolUseId": message.get("tool_call_id", ""), "content": [{"text": text}]}}]
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            blocks += [{"toolUse": {"toolUseId": call.get("id", ""),
                                    "name": (call.get("function") or {}).get("name", ""),
                                    "input": _arguments((call.get("function") or {})
                                                        .get("arguments", ""))}}
                       for call in message.get("tool_calls") or []]
        elif role == "user":
            blocks = _blocks(message.get("content"))
        else:
            raise InvalidGatewayRequest(f"message role {role!r} is not supported")
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    out: JSON = {"messages": messages}
    if system:
        out["system"] = system
    config: JSON = {}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxTokens"] = limit
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if config:
        out["inferenceConfig"] = config
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    if tools and choice != "none":
        tool_config: JSON = {"tools": [{"toolSpec": {
            "name": t["name"], "description": t.get("description") or t["name"],
            "inputSchema": {"json": t.get("parameters") or {"type": "object",
                                                            "properties": {}}}}}
            for t in tools]}
        if choice == "required":
            tool_config["toolChoice"] = {"any": {}}
        elif isinstance(choice, dict):
            tool_config["toolChoice"] = {"tool": {"name": (choice.get("function") or {})
                                                  .get("name", "")}}
        out["toolConfig"] = tool_config
    return out


def usage(raw: JSON | None) -> Usage:
    raw = raw or {}
    read = int(raw.get("cacheReadInputTokens") or 0)
    written = int(raw.get("cacheWriteInputTokens") or 0)
    return Usage(prompt_tokens=int(raw.get("inputTokens") or 0) + read + written,
                 completion_tokens=int(raw.get("outputTokens") or 0),
                 cached_tokens=read, cache_write_tokens=written)


def chat_completion(data: JSON, created: int, model: str) -> JSON:
    content = ((data.get("output") or {}).get("message") or {}).get("content") or []
    text = "".join(b["text"] for b in content if "text" in b)
    calls = [{"id": b["toolUse"]["toolUseId"], "type": "function",
              "function": {"name": b["toolUse"]["name"],
                           "arguments": orjson.dumps(b["toolUse"].get("input", {})).decode()}}
             for b in content if "toolUse" in b]
    message: JSON = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return {"id": (data.get("ResponseMetadata") or {}).get("RequestId", ""),
            "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": STOP_REASONS.get(data.get("stopReason") or "",
                                                           "stop")}],
            "usage": openai_usage(usage(data.get("usage")))}


class EventStreamSource:
    """AWS event-stream frames → events named by their `:event-type` header (an
    exception frame is named by its `:exception-type`)."""

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer.add_data(chunk)
        events = []
        for message in self._buffer:
            headers = message.headers
            if headers.get(":message-type") == "exception":
                raise UpstreamError(error_message(400, message.payload) + " ("
                                    + str(headers.get(":exception-type")) + ")", status=502)
            events.append(Event(str(headers.get(":event-type", "")),
                                message.payload.decode("utf-8")))
        return events

    def flush(self) -> list[Event]:
        return []


class BedrockStream:
    def __init__(self, created: int, model: str) -> None:
        self._created = created
        self._model = model
        self._tools: dict[int, int] = {}  # content block index → tool call index
        self._finish: str | None = None
        self.usage: Usage | None = None

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {"id": "", "object": "chat.completion.chunk", "created": self._created,
                "model": self._model, "choices": [{"index": 0, "delta": delta,
                                                   "logprobs": None, "finish_reason": finish}]}

    def feed(self, event: Event) -> list[JSON]:
        data: JSON = orjson.loads(event.data or "{}")
        kind = event.event
        if kind == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "contentBlockStart":
            tool = (data.get("start") or {}).get("toolUse")
            if tool:
                index = self._tools[data.get("contentBlockIndex", 0)] = len(self._tools)
                return [self._chunk({"tool_calls": [{
                    "index": index, "id": tool.get("toolUseId", ""), "type": "function",
                    "function": {"name": tool.get("name", ""), "arguments": ""}}]})]
            return []
        if kind == "contentBlockDelta":
            delta = data.get("delta") or {}
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})]
            if "toolUse" in delta:
                index = self._tools.get(data.get("contentBlockIndex", 0), 0)
                return [self._chunk({"tool_calls": [{"index": index, "function": {
                    "arguments": delta["toolUse"].get("input", "")}}]})]
            return []
        if kind == "messageStop":
            self._finish = STOP_REASONS.get(data.get("stopReason") or "", "stop")
            return [self._chunk({}, self._finish)]
        if kind == "metadata":
            self.usage = usage(data.get("usage"))
            final = self._chunk({})
            final["choices"], final["usage"] = [], openai_usage(self.usage)
            return [final]
        return []


class BedrockProvider:
    def _request(self, deployment: Deployment, operation: str, body: JSON) -> UpstreamRequest:
        config = deployment.provider
        region = config.region or "us-east-1"
        base = (config.base_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        url = f"{base}/model/{quote(deployment.model, safe='')}/{operation}"
        payload = orjson.dumps(body)
        headers = {"content-type": "application/json", **config.headers}
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        elif config.aws_access_key_id and config.aws_secret_access_key:
            request = AWSRequest(method="POST", url=url, data=payload, headers=headers)
            credentials = Credentials(config.aws_access_key_id, config.aws_secret_access_key,
                                      config.aws_session_token)
            SigV4Auth(credentials, "bedrock", region).add_auth(request)
            headers = {k.lower(): str(v) for k, v in request.headers.items()}
        else:
            raise InvalidGatewayRequest(f"provider {config.name!r} has no credentials: set "
                                        "api_key or aws_access_key_id/aws_secret_access_key")
        return UpstreamRequest(url, payload, headers)

    def chat_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        operation = "converse-stream" if body.get("stream") else "converse"
        return self._request(deployment, operation, converse_body(body))

    def chat_response(self, data: JSON, created: int) -> JSON:
        return chat_completion(data, created, "")

    def chat_stream(self, created: int) -> BedrockStream:
        return BedrockStream(created, "")

    def stream_events(self) -> EventStreamSource:
        return EventStreamSource()

    def embeddings_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        raw = body.get("input")
        if not isinstance(raw, str):
            raise InvalidGatewayRequest("the bedrock provider embeds one text per request "
                                        "(Titan's InvokeModel)")
        return self._request(deployment, "invoke", {"inputText": raw})

    def embeddings_response(self, data: JSON) -> JSON:
        tokens = int(data.get("inputTextTokenCount") or 0)
        return {"object": "list", "model": "",
                "data": [{"object": "embedding", "index": 0,
                          "embedding": data.get("embedding") or []}],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def count_tokens_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        return self._request(deployment, "count-tokens",
                             {"input": {"converse": converse_body(body)}})

    def count_tokens_response(self, data: JSON) -> int:
        return int(data.get("inputTokens") or 0)

    def error_message(self, status: int, body: bytes) -> str:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return error_message(status, body)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
        return error_message(status, body)


