"""Mock LLM providers: real HTTP servers on loopback speaking each provider's wire
format (OpenAI chat completions and embeddings incl. SSE chunks; Anthropic messages
incl. its SSE event types), scriptable to fail, hang or break off mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

JSON = dict[str, Any]


@dataclass
class Fault:
    status: int = 500
    body: JSON | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer
    break_after: int | None = None  # stream this many events, then drop the connection


@contextlib.asynccontextmanager
async def serve_all(*apps: Any) -> AsyncIterator[list[str]]:
    """Serve each app on a free loopback port; stop them all at once on exit. Each
    socket listens before its server task starts, so clients may connect at once
    (the kernel queues them)."""
    sockets, servers, tasks = [], [], []
    for app in apps:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it: without it Nagle + delayed ACKs add ~40 ms a call.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                               timeout_graceful_shutdown=1))
        sockets.append(sock)
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
    try:
        yield [f"http://127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for server in servers:
            server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)
        for sock in sockets:
            sock.close()


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    async with serve_all(app) as urls:
        yield urls[0]


def _last_user_text(messages: list[JSON]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or []
                           if p.get("type") == "text")
    return ""


class MockProvider:
    """Records every request; answers with a scripted fault or a canned answer."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[JSON] = []
        self.headers: list[dict[str, str]] = []
        self.faults: deque[Fault] = deque()
        self.reply_text: str | None = None
        self.cancelled = asyncio.Event()

    def fail(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def answer(self, body: JSON) -> str:
        return self.reply_text or f"{self.name} says: {_last_user_text(body['messages'])}"

    async def _take(self, request: Request) -> tuple[JSON, Fault | None]:
        body: JSON = orjson.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.hang:
            # Answer nothing until the caller gives up and closes the connection.
            while (await request.receive())["type"] != "http.disconnect":
                pass
            self.cancelled.set()
        return body, fault


def _wants_tool(body: JSON, tools_key: str) -> bool:
    last = body["messages"][-1]
    if not body.get(tools_key):
        return False
    if last.get("role") == "tool":
        return False
    content = last.get("content")
    return not (isinstance(content, list) and any(b.get("type") == "tool_result"
                                                  for b in content))


async def _events(payloads: list[bytes], fault: Fault | None,
                  mock: MockProvider) -> AsyncIterator[bytes]:
    try:
        for i, payload in enumerate(payloads):
            if fault is not None and fault.break_after is not None and i >= fault.break_after:
                raise ConnectionAbortedError("mock provider drops the stream")
            yield payload
            await asyncio.sleep(0)
    except asyncio.CancelledError:
        mock.cancelled.set()
        raise


class MockOpenAI(MockProvider):
    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/responses", self.responses, methods=["POST"]),
        ])

    async def responses(self, request: Request) -> Response:
        """The Responses API, for providers configured with responses_api: true."""
        body, fault = await self._take(request)
        if fault is not None and fault.break_after is None:
            return self._error(fault)
        text = body["input"] if isinstance(body["input"], str) else "items"
        message = {"type": "message", "id": "msg_r1", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": f"{self.name} responds: {text}",
                                "annotations": []}]}
        reasoning = {"type": "reasoning", "id": "rs_1", "summary": []}
        response: JSON = {
            "id": "resp_mock", "object": "response", "created_at": 1700000000,
            "status": "completed", "model": body["model"], "output": [reasoning, message],
            "previous_response_id": body.get("previous_response_id"), "error": None,
            "incomplete_details": None, "tools": body.get("tools") or [],
            "parallel_tool_calls": True, "tool_choice": "auto",
            "usage": {"input_tokens": 21, "output_tokens": 9, "total_tokens": 30,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 4}}}
        if not body.get("stream"):
            return JSONResponse(response)

        def event(payload: JSON) -> bytes:
            return (f"event: {payload['type']}\n".encode() + b"data: " + orjson.dumps(payload)
                    + b"\n\n")

        words = message["content"][0]["text"]  # type: ignore[index]
        head = dict(response, status="in_progress", output=[], usage=None)
        payloads = [event({"type": "response.created", "sequence_number": 0, "response": head}),
                    event({"type": "response.output_item.added", "sequence_number": 1,
                           "output_index": 0, "item": reasoning}),
                    event({"type": "response.output_item.done", "sequence_number": 2,
                           "output_index": 0, "item": reasoning}),
                    event({"type": "response.output_item.added", "sequence_number": 3,
                           "output_index": 1, "item": dict(message, content=[],
                                                           status="in_progress")}),
                    event({"type": "response.content_part.added", "sequence_number": 4,
                           "item_id": "msg_r1", "output_index": 1, "content_index": 0,
                           "part": {"type": "output_text", "text": "", "annotations": []}})]
        for i in range(0, len(words), 7):
            payloads.append(event({"type": "response.output_text.delta",
                                   "sequence_number": len(payloads), "item_id": "msg_r1",
                                   "output_index": 1, "content_index": 0,
                                   "delta": words[i:i + 7], "logprobs": []}))
        payloads.append(event({"type": "response.output_item.done",
                               "sequence_number": len(payloads), "output_index": 1,
                               "item": message}))
        payloads.append(event({"type": "response.completed", "sequence_number": len(payloads),
                               "response": response}))
        return StreamingResponse(_events(payloads, fault, self),
                                 media_type="text/event-stream")

    def _error(self, fault: Fault) -> Response:
        body = fault.body or {"error": {"message": f"mock failure {fault.status}",
                                        "type": "server_error", "param": None, "code": None}}
        return JSONResponse(body, status_code=fault.status, headers=fault.headers)

    async def chat(self, request: Request) -> Response:
        body, fault = await self._take(request)
        if fault is not None and fault.break_after is None:
            return self._error(fault)
        usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                 "prompt_tokens_details": {"cached_tokens": 2}}
        tool = _wants_tool(body, "tools")
        if not body.get("stream"):
            message: JSON = {"role": "assistant", "content": None if tool else self.answer(body)}
            if tool:
                message["tool_calls"] = [{"id": "call_1", "type": "function", "function": {
                    "name": body["tools"][0]["function"]["name"],
                    "arguments": '{"city": "Paris"}'}}]
            return JSONResponse({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000,
                "model": body["model"], "system_fingerprint": None,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if tool else "stop"}],
                "usage": usage})
        head = {"id": "chatcmpl-mock", "object": "chat.completion.chunk",
                "created": 1700000000, "model": body["model"], "system_fingerprint": None}

        def chunk(delta: JSON, finish: str | None = None) -> bytes:
            return b"data: " + orjson.dumps(dict(head, choices=[
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])) \
                + b"\n\n"

        payloads = [chunk({"role": "assistant", "content": ""})]
        if tool:
            name = body["tools"][0]["function"]["name"]
            payloads.append(chunk({"tool_calls": [{"index": 0, "id": "call_1",
                                                   "type": "function", "function": {
                                                       "name": name, "arguments": ""}}]}))
            for piece in ('{"city"', ': "Par', 'is"}'):
                payloads.append(chunk({"tool_calls": [{"index": 0, "function": {
                    "arguments": piece}}]}))
            payloads.append(chunk({}, "tool_calls"))
        else:
            text = self.answer(body)
            for i in range(0, len(text), 7):
                payloads.append(chunk({"content": text[i:i + 7]}))
            payloads.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            payloads.append(b"data: " + orjson.dumps(dict(head, choices=[], usage=usage))
                            + b"\n\n")
        payloads.append(b"data: [DONE]\n\n")
        return StreamingResponse(_events(payloads, fault, self),
                                 media_type="text/event-stream")

    async def embeddings(self, request: Request) -> Response:
        body, fault = await self._take(request)
        if fault is not None:
            return self._error(fault)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": bag_of_words(text)}
                     for i, text in enumerate(inputs)],
            "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}})


def bag_of_words(text: Any, dimensions: int = 64) -> list[float]:
    """A deterministic embedding in which texts with the same words point the same way:
    each lower-cased word (punctuation stripped) adds 1 to a dimension picked by its
    CRC-32. Cosine similarity is then the overlap of the two texts' words."""
    vector = [0.0] * dimensions
    for word in str(text).lower().split():
        word = "".join(c for c in word if c.isalnum())
        if word:
            vector[zlib.crc32(word.encode()) % dimensions] += 1.0
    return vector


class MockAnthropic(MockProvider):
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"]),
                                 Route("/v1/messages/count_tokens", self.count_tokens,
                                       methods=["POST"])])

    async def count_tokens(self, request: Request) -> Response:
        body, _ = await self._take(request)
        return JSONResponse({"input_tokens": 7 * len(body["messages"])})

    def answer(self, body: JSON) -> str:
        if self.reply_text:
            return self.reply_text
        last = body["messages"][-1]
        content = last["content"]
        text = content if isinstance(content, str) else "".join(
            b.get("text", "") for b in content if b.get("type") == "text")
        return f"{self.name} says: {text}"

    async def messages(self, request: Request) -> Response:
        body, fault = await self._take(request)
        if fault is not None and fault.break_after is None:
            error = fault.body or {"type": "error", "error": {
                "type": "overloaded_error" if fault.status == 529 else "api_error",
                "message": f"mock failure {fault.status}"}}
            return JSONResponse(error, status_code=fault.status, headers=fault.headers)
        tool = _wants_tool(body, "tools")
        usage = {"input_tokens": 10, "output_tokens": 6, "cache_read_input_tokens": 4,
                 "cache_creation_input_tokens": 0}
        if tool:
            forced = (body.get("tool_choice") or {}).get("type") == "tool"
            # A forced tool is called straight away, with no text before it.
            content: list[JSON] = [] if forced else [{"type": "text", "text": "Let me check."}]
            content.append({"type": "tool_use", "id": "toolu_01",
                            "name": body["tools"][-1 if forced else 0]["name"],
                            "input": {"city": "Paris"}})
        else:
            content = [{"type": "text", "text": self.answer(body)}]
        if body.get("thinking"):
            content.insert(0, {"type": "thinking", "thinking": "Let me think.",
                               "signature": "sig-123"})
        if not body.get("stream"):
            return JSONResponse({
                "id": "msg_mock", "type": "message", "role": "assistant",
                "model": body["model"], "content": content,
                "stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None,
                "usage": usage})

        def event(payload: JSON) -> bytes:
            return (f"event: {payload['type']}\n".encode() + b"data: " + orjson.dumps(payload)
                    + b"\n\n")

        payloads = [event({"type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": body["model"],
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 4,
                      "cache_creation_input_tokens": 0}}}),
            event({"type": "ping"})]
        for index, block in enumerate(content):
            if block["type"] == "thinking":
                payloads.append(event({"type": "content_block_start", "index": index,
                                       "content_block": {"type": "thinking", "thinking": ""}}))
                payloads.append(event({"type": "content_block_delta", "index": index, "delta": {
                    "type": "thinking_delta", "thinking": block["thinking"]}}))
                payloads.append(event({"type": "content_block_delta", "index": index, "delta": {
                    "type": "signature_delta", "signature": block["signature"]}}))
            elif block["type"] == "text":
                payloads.append(event({"type": "content_block_start", "index": index,
                                       "content_block": {"type": "text", "text": ""}}))
                text = block["text"]
                for i in range(0, len(text), 7):
                    payloads.append(event({"type": "content_block_delta", "index": index,
                                           "delta": {"type": "text_delta",
                                                     "text": text[i:i + 7]}}))
            else:
                payloads.append(event({"type": "content_block_start", "index": index,
                                       "content_block": {"type": "tool_use", "id": block["id"],
                                                         "name": block["name"], "input": {}}}))
                for piece in ('{"city"', ': "Par', 'is"}'):
                    payloads.append(event({"type": "content_block_delta", "index": index,
                                           "delta": {"type": "input_json_delta",
                                                     "partial_json": piece}}))
            payloads.append(event({"type": "content_block_stop", "index": index}))
        payloads.append(event({"type": "message_delta", "delta": {
            "stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 6}}))
        payloads.append(event({"type": "message_stop"}))
        return StreamingResponse(_events(payloads, fault, self),
                                 media_type="text/event-stream")


class MockGemini(MockProvider):
    """generateContent, streamGenerateContent?alt=sse and batchEmbedContents."""

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1beta/models/{call:path}", self.call,
                                       methods=["POST"])])

    def answer(self, body: JSON) -> str:
        if self.reply_text:
            return self.reply_text
        parts = body["contents"][-1]["parts"]
        return f"{self.name} says: " + "".join(p.get("text", "") for p in parts)

    async def call(self, request: Request) -> Response:
        body, fault = await self._take(request)
        model, _, method = request.path_params["call"].partition(":")
        if fault is not None and fault.break_after is None:
            return JSONResponse(fault.body or {"error": {
                "code": fault.status, "message": f"mock failure {fault.status}",
                "status": "UNAVAILABLE"}}, status_code=fault.status, headers=fault.headers)
        if method == "countTokens":
            return JSONResponse({"totalTokens": 5 * len(body["generateContentRequest"]["contents"])})
        if method == "batchEmbedContents":
            return JSONResponse({"embeddings": [{"values": [0.5, float(i)]}
                                                for i, _ in enumerate(body["requests"])]})
        last = body["contents"][-1]["parts"]
        tool = bool(body.get("tools")) and not any("functionResponse" in p for p in last)
        usage = {"promptTokenCount": 8, "candidatesTokenCount": 4, "totalTokenCount": 12}
        parts: list[JSON] = ([{"functionCall": {"name": body["tools"][0][
            "functionDeclarations"][0]["name"], "args": {"city": "Paris"}}}] if tool
            else [{"text": self.answer(body)}])
        if method == "generateContent":
            return JSONResponse({"candidates": [{"content": {"role": "model", "parts": parts},
                                                 "finishReason": "STOP", "index": 0}],
                                 "usageMetadata": usage, "modelVersion": model,
                                 "responseId": "gem-1"})
        chunks: list[JSON] = []
        if tool:
            chunks.append({"candidates": [{"content": {"role": "model", "parts": parts},
                                           "finishReason": "STOP", "index": 0}]})
        else:
            text = parts[0]["text"]
            pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
            for i, piece in enumerate(pieces):
                candidate: JSON = {"content": {"role": "model", "parts": [{"text": piece}]},
                                   "index": 0}
                if i == len(pieces) - 1:
                    candidate["finishReason"] = "STOP"
                chunks.append({"candidates": [candidate]})
        for chunk in chunks:
            chunk.update(usageMetadata=usage, modelVersion=model, responseId="gem-1")
        return StreamingResponse(
            _events([b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks], fault, self),
            media_type="text/event-stream")


class MockCohere(MockProvider):
    """Cohere v2: /v2/chat (incl. its SSE events) and /v2/embed."""

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v2/chat", self.chat, methods=["POST"]),
                                 Route("/v2/embed", self.embed, methods=["POST"])])

    async def embed(self, request: Request) -> Response:
        body, _ = await self._take(request)
        return JSONResponse({"id": "emb-1", "texts": body["texts"],
                             "embeddings": {"float": [[0.25, float(i)]
                                                      for i, _ in enumerate(body["texts"])]},
                             "meta": {"billed_units": {"input_tokens": 2 * len(body["texts"])}}})

    async def chat(self, request: Request) -> Response:
        body, fault = await self._take(request)
        if fault is not None and fault.break_after is None:
            return JSONResponse(fault.body or {"message": f"mock failure {fault.status}"},
                                status_code=fault.status, headers=fault.headers)
        tool = _wants_tool(body, "tools")
        usage = {"billed_units": {"input_tokens": 9, "output_tokens": 3},
                 "tokens": {"input_tokens": 11, "output_tokens": 3}}
        name = body["tools"][0]["function"]["name"] if tool else ""
        if not body.get("stream"):
            message: JSON = {"role": "assistant"}
            if tool:
                message.update(tool_plan="I will look it up.", tool_calls=[
                    {"id": "cohere_call_1", "type": "function",
                     "function": {"name": name, "arguments": '{"city": "Paris"}'}}])
            else:
                message["content"] = [{"type": "text", "text": self.answer(body)}]
            return JSONResponse({"id": "co-1", "message": message, "usage": usage,
                                 "finish_reason": "TOOL_CALL" if tool else "COMPLETE"})

        def event(payload: JSON) -> bytes:
            return (f"event: {payload['type']}\n".encode() + b"data: " + orjson.dumps(payload)
                    + b"\n\n")

        payloads = [event({"type": "message-start", "id": "co-1",
                           "delta": {"message": {"role": "assistant"}}})]
        if tool:
            payloads.append(event({"type": "tool-plan-delta",
                                   "delta": {"message": {"tool_plan": "I will"}}}))
            payloads.append(event({"type": "tool-call-start", "index": 0, "delta": {"message": {
                "tool_calls": {"id": "cohere_call_1", "type": "function",
                               "function": {"name": name, "arguments": ""}}}}}))
            for piece in ('{"city"', ': "Par', 'is"}'):
                payloads.append(event({"type": "tool-call-delta", "index": 0, "delta": {
                    "message": {"tool_calls": {"function": {"arguments": piece}}}}}))
            payloads.append(event({"type": "tool-call-end", "index": 0}))
        else:
            payloads.append(event({"type": "content-start", "index": 0, "delta": {"message": {
                "content": {"type": "text", "text": ""}}}}))
            text = self.answer(body)
            for i in range(0, len(text), 7):
                payloads.append(event({"type": "content-delta", "index": 0, "delta": {
                    "message": {"content": {"text": text[i:i + 7]}}}}))
            payloads.append(event({"type": "content-end", "index": 0}))
        payloads.append(event({"type": "message-end", "delta": {
            "finish_reason": "TOOL_CALL" if tool else "COMPLETE", "usage": usage}}))
        return StreamingResponse(_events(payloads, fault, self),
                                 media_type="text/event-stream")


def event_stream_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude, string headers, payload, CRCs."""
    encoded = b""
    for name, value in headers.items():
        raw = value.encode()
        encoded += (bytes([len(name)]) + name.encode() + b"\x07"
                    + len(raw).to_bytes(2, "big") + raw)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = total.to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    prelude += zlib.crc32(prelude).to_bytes(4, "big")
    message = prelude + encoded + payload
    return message + zlib.crc32(message).to_bytes(4, "big")


class MockBedrock(MockProvider):
    """Bedrock runtime: /model/{id}/converse and /converse-stream (event-stream)."""

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/model/{model}/{operation}", self.call,
                                       methods=["POST"])])

    def answer(self, body: JSON) -> str:
        if self.reply_text:
            return self.reply_text
        blocks = body["messages"][-1]["content"]
        return f"{self.name} says: " + "".join(b.get("text", "") for b in blocks)

    async def call(self, request: Request) -> Response:
        body, fault = await self._take(request)
        if fault is not None and fault.break_after is None:
            return JSONResponse(fault.body or {"message": f"mock failure {fault.status}"},
                                status_code=fault.status, headers=fault.headers)
        if not request.headers.get("authorization", "").startswith(
                "AWS4-HMAC-SHA256 Credential=AKIDMOCK/"):
            return JSONResponse({"message": "missing SigV4 signature"}, status_code=403)
        last = body["messages"][-1]["content"]
        tool = bool(body.get("toolConfig")) and not any("toolResult" in b for b in last)
        usage = {"inputTokens": 13, "outputTokens": 7, "totalTokens": 20}
        name = body["toolConfig"]["tools"][0]["toolSpec"]["name"] if tool else ""
        if request.path_params["operation"] == "converse":
            content: list[JSON] = ([{"toolUse": {"toolUseId": "tooluse_1", "name": name,
                                                 "input": {"city": "Paris"}}}] if tool
                                   else [{"text": self.answer(body)}])
            return JSONResponse({"output": {"message": {"role": "assistant",
                                                        "content": content}},
                                 "stopReason": "tool_use" if tool else "end_turn",
                                 "usage": usage, "metrics": {"latencyMs": 5}})

        def frame(kind: str, payload: JSON) -> bytes:
            return event_stream_frame({":event-type": kind, ":content-type": "application/json",
                                       ":message-type": "event"}, orjson.dumps(payload))

        frames = [frame("messageStart", {"role": "assistant"})]
        if tool:
            frames.append(frame("contentBlockStart", {"contentBlockIndex": 0, "start": {
                "toolUse": {"toolUseId": "tooluse_1", "name": name}}}))
            for piece in ('{"city"', ': "Par', 'is"}'):
                frames.append(frame("contentBlockDelta", {"contentBlockIndex": 0,
                                                          "delta": {"toolUse": {"input": piece}}}))
        else:
            text = self.answer(body)
            for i in range(0, len(text), 7):
                frames.append(frame("contentBlockDelta", {"contentBlockIndex": 0,
                                                          "delta": {"text": text[i:i + 7]}}))
        frames.append(frame("contentBlockStop", {"contentBlockIndex": 0}))
        frames.append(frame("messageStop", {"stopReason": "tool_use" if tool else "end_turn"}))
        frames.append(frame("metadata", {"usage": usage, "metrics": {"latencyMs": 5}}))
        return StreamingResponse(_events(frames, fault, self),
                                 media_type="application/vnd.amazon.eventstream")
