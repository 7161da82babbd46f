"""Anthropic Messages in, OpenAI chat shapes inside, Anthropic shapes out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lamina.gateway.inbound.anthropic import chat_request, events, message
from lamina.gateway.providers.anthropic import chat_body

REQUEST = {
    "model": "fast", "max_tokens": 1024, "system": [{"type": "text", "text": "Be terse."}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Look:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": "/9j/4AAQ"}}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"location": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1",
             "content": [{"type": "text", "text": "15 degrees"}]},
            {"type": "text", "text": "And tomorrow?"}]},
    ],
    "tools": [{"name": "get_weather", "description": "Weather",
               "input_schema": {"type": "object", "properties": {}}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "stop_sequences": ["END"], "temperature": 0.5, "metadata": {"user_id": "u-1"},
    "stream": True,
}


def test_request() -> None:
    chat = chat_request(REQUEST)
    assert chat.pop("_anthropic") == {k: v for k, v in REQUEST.items()
                                      if k not in ("model", "max_tokens", "stream")}
    assert chat == {
        "model": "fast", "max_tokens": 1024,
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "15 degrees"},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "required", "parallel_tool_calls": False, "stop": ["END"],
        "temperature": 0.5, "user": "u-1", "stream": True,
        "stream_options": {"include_usage": True},
    }


# https://platform.openai.com/docs/api-reference/chat/object
COMPLETION = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion",
    "created": 1741570283, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {
        "role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\":\"Boston\"}"}}]},
        "logprobs": None, "finish_reason": "tool_calls"}],
    "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
              "prompt_tokens_details": {"cached_tokens": 17, "audio_tokens": 0}},
}


def test_message() -> None:
    assert message(COMPLETION, "fast") == {
        "id": "msg_chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "type": "message",
        "role": "assistant", "model": "gpt-4o-2024-08-06",
        "content": [{"type": "tool_use", "id": "call_abc", "name": "get_weather",
                     "input": {"location": "Boston"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 1100, "output_tokens": 46, "cache_read_input_tokens": 17,
                  "cache_creation_input_tokens": 0},
    }


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}]}


async def _feed(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk


async def test_events() -> None:
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}), _chunk({"content": "lo"}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "f", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        _chunk({}, "tool_calls"),
        dict(_chunk({}), choices=[], usage={"prompt_tokens": 9, "completion_tokens": 12,
                                            "total_tokens": 21}),
    ]
    out = [event async for event in events(_feed(chunks), "fast")]
    assert [e["type"] for e in out] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "content_block_start", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert out[0]["message"]["id"] == "msg_chatcmpl-123"
    assert out[1] == {"type": "content_block_start", "index": 0,
                      "content_block": {"type": "text", "text": ""}}
    assert out[5]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f",
                                       "input": {}}
    assert out[6]["delta"] == {"type": "input_json_delta", "partial_json": "{\"a\":"}
    assert out[9]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert out[9]["usage"]["output_tokens"] == 12


def test_native_request_reaches_anthropic_untouched() -> None:
    native = dict(REQUEST, top_k=5, system=[
        {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}])
    sent = chat_body(chat_request(native), "claude-sonnet-4-5")
    assert sent == dict(native, model="claude-sonnet-4-5")
