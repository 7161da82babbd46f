"""Between a whole chat completion and its stream of chunks, both ways: a streamed
answer is folded into one completion (to cache it), and a cached completion is
unfolded into chunks (to answer a streaming request from the cache)."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


class Folder:
    """Accumulates chat.completion.chunks (choice 0) into a chat.completion."""

    def __init__(self) -> None:
        self._head: JSON = {}
        self._content: list[str] = []
        self._calls: dict[int, JSON] = {}
        self._finish: str | None = None
        self._usage: JSON | None = None

    def feed(self, chunk: JSON) -> None:
        if not self._head:
            self._head = {k: chunk.get(k) for k in ("id", "created", "model")}
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._content.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = self._calls.setdefault(call.get("index", 0), {
                    "id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]

    def completion(self) -> JSON:
        message: JSON = {"role": "assistant", "content": "".join(self._content) or None}
        if self._calls:
            message["tool_calls"] = [self._calls[i] for i in sorted(self._calls)]
        out: JSON = dict(self._head, object="chat.completion", choices=[
            {"index": 0, "message": message, "logprobs": None,
             "finish_reason": self._finish or "stop"}])
        if self._usage is not None:
            out["usage"] = self._usage
        return out


def unfold(completion: JSON, include_usage: bool) -> list[JSON]:
    head = {"id": completion.get("id", ""), "object": "chat.completion.chunk",
            "created": completion.get("created", 0), "model": completion.get("model", "")}
    chunks: list[JSON] = []
    for choice in completion.get("choices") or []:
        message = choice.get("message") or {}
        delta: JSON = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            delta["tool_calls"] = [dict(call, index=i)
                                   for i, call in enumerate(message["tool_calls"])]
        index = choice.get("index", 0)
        chunks.append(dict(head, choices=[{"index": index, "delta": delta,
                                           "logprobs": None, "finish_reason": None}]))
        chunks.append(dict(head, choices=[{"index": index, "delta": {}, "logprobs": None,
                                           "finish_reason": choice.get("finish_reason")}]))
    if include_usage and completion.get("usage"):
        chunks.append(dict(head, choices=[], usage=completion["usage"]))
    return chunks
