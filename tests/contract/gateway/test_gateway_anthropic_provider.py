"""OpenAI chat ⇄ Anthropic Messages, against shapes from Anthropic's API reference."""

from __future__ import annotations

import json

import orjson

from lamina.gateway.config import ProviderConfig
from lamina.gateway.providers.anthropic import AnthropicProvider, AnthropicStream, chat_body
from lamina.gateway.providers.base import Deployment
from lamina.gateway.sse import EventDecoder

REQUEST = {
    "model": "fast",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image, and the weather?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_01A", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}},
            {"id": "toolu_01B", "type": "function",
             "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "15 degrees"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "noon"},
    ],
    "tools": [{"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"]}}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "max_completion_tokens": 1024, "temperature": 0.2, "stop": "END", "user": "u-1",
    "stream": True, "stream_options": {"include_usage": True},
}

EXPECTED = {
    "model": "claude-sonnet-4-5",
    "system": [{"type": "text", "text": "You are terse."}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image, and the weather?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
             "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "15 degrees"},
            {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "noon"}]},
    ],
    "max_tokens": 1024, "temperature": 0.2, "stop_sequences": ["END"],
    "tools": [{"name": "get_weather", "description": "Get the current weather",
               "input_schema": {"type": "object",
                                "properties": {"location": {"type": "string"}},
                                "required": ["location"]}}],
    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    "metadata": {"user_id": "u-1"},
    "stream": True,
}


def test_request() -> None:
    assert chat_body(REQUEST, "claude-sonnet-4-5") == EXPECTED


def test_request_wire() -> None:
    provider = ProviderConfig("claude", "anthropic", base_url="https://api.anthropic.com/",
                              api_key="sk-ant")
    request = AnthropicProvider().chat_request(REQUEST, Deployment(provider, "claude-x"))
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert orjson.loads(request.body)["model"] == "claude-x"


# https://docs.anthropic.com/en/api/messages (response example, with a tool use)
RESPONSE = {
    "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "text", "text": "I'll check the weather."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"location": "San Francisco, CA"}}],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_read_input_tokens": 100,
              "cache_creation_input_tokens": 5},
}


def test_response() -> None:
    completion = AnthropicProvider().chat_response(RESPONSE, 1700000000)
    assert completion.pop("_anthropic") == RESPONSE  # kept whole for Anthropic clients
    assert completion == {
        "id": "msg_01Aq9w938a90dw8q", "object": "chat.completion", "created": 1700000000,
        "model": "claude-sonnet-4-5",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "I'll check the weather.",
            "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                            "function": {"name": "get_weather",
                                         "arguments": '{"location":"San Francisco, CA"}'}}]}}],
        "usage": {"prompt_tokens": 2200, "completion_tokens": 503, "total_tokens": 2703,
                  "prompt_tokens_details": {"cached_tokens": 100}},
    }


# https://docs.anthropic.com/en/docs/build-with-claude/streaming (tool use example)
STREAM = """event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \\"San Francisco, CA\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"""


def test_stream() -> None:
    decoder, stream = EventDecoder(), AnthropicStream(1700000000)
    carried = [c for event in decoder.feed(STREAM.encode()) for c in stream.feed(event)]
    assert [c["_anthropic"]["type"] for c in carried][:3] == [
        "message_start", "content_block_start", "ping"]
    chunks = [c for c in carried if c["choices"] or "usage" in c]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Okay"}
    assert deltas[2] == {"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                                         "type": "function",
                                         "function": {"name": "get_weather",
                                                      "arguments": ""}}]}
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"]
                        for d in deltas[3:] if "tool_calls" in d)
    assert json.loads(arguments) == {"location": "San Francisco, CA"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 472
    assert chunks[-1]["usage"]["completion_tokens"] == 89
    assert all(c["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U" for c in chunks)
    assert stream.usage is not None and stream.usage.total_tokens == 561
