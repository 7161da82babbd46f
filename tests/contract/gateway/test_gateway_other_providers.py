"""OpenAI chat shapes ⇄ Gemini, Cohere v2, Bedrock Converse and Azure OpenAI, against
shapes from each provider's API reference."""

from __future__ import annotations

import orjson

from lamina.gateway.config import ProviderConfig
from lamina.gateway.providers.base import Deployment
from lamina.gateway.providers.bedrock import BedrockProvider, BedrockStream, converse_body
from lamina.gateway.providers.cohere import CohereProvider, CohereStream
from lamina.gateway.providers.cohere import chat_body as cohere_body
from lamina.gateway.providers.gemini import GeminiProvider, GeminiStream
from lamina.gateway.providers.gemini import chat_body as gemini_body
from lamina.gateway.providers.openai import OpenAIProvider
from lamina.gateway.sse import Event

CONVERSATION = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "15C"},
]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"city": {"type": "string"}}}}}]


def test_gemini_request() -> None:
    body = gemini_body({"messages": CONVERSATION, "tools": TOOLS, "tool_choice": "required",
                        "max_tokens": 50, "temperature": 0.1, "stop": ["x"],
                        "response_format": {"type": "json_object"}})
    assert body == {
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                          "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {
                "name": "get_weather", "response": {"content": "15C"}}}]}],
        "tools": [{"functionDeclarations": [{
            "name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        "generationConfig": {"temperature": 0.1, "maxOutputTokens": 50, "stopSequences": ["x"],
                             "responseMimeType": "application/json"},
    }


# https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse
GEMINI_RESPONSE = {
    "candidates": [{"content": {"parts": [{"functionCall": {
        "name": "get_weather", "args": {"city": "Paris"}}}], "role": "model"},
        "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 5,
                      "totalTokenCount": 35, "cachedContentTokenCount": 10},
    "modelVersion": "gemini-2.0-flash", "responseId": "abc",
}


def test_gemini_response_and_stream() -> None:
    completion = GeminiProvider().chat_response(GEMINI_RESPONSE, 1)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert completion["usage"]["prompt_tokens_details"] == {"cached_tokens": 10}
    stream = GeminiStream(1, "")
    text = {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"},
                            "index": 0}], "usageMetadata": {"promptTokenCount": 3}}
    chunks = stream.feed(Event("message", orjson.dumps(text).decode()))
    chunks += stream.feed(Event("message", orjson.dumps(GEMINI_RESPONSE).decode()))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_cohere_request_and_response() -> None:
    body = cohere_body({"messages": CONVERSATION, "tools": TOOLS, "top_p": 0.5,
                        "tool_choice": "required", "max_tokens": 9}, "command-a")
    assert body["messages"][2]["tool_calls"] == CONVERSATION[2]["tool_calls"]
    assert body["messages"][3] == {"role": "tool", "content": "15C", "tool_call_id": "call_1"}
    assert (body["p"], body["tool_choice"], body["max_tokens"]) == (0.5, "REQUIRED", 9)
    # https://docs.cohere.com/reference/chat (v2 response)
    completion = CohereProvider().chat_response({
        "id": "c-1", "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]},
        "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 2},
                  "tokens": {"input_tokens": 70, "output_tokens": 2}}}, 1)
    assert completion["choices"][0]["message"]["content"] == "Sunny."
    assert completion["usage"]["prompt_tokens"] == 70


def test_cohere_stream() -> None:
    stream = CohereStream(1, "")
    events = [
        {"type": "message-start", "id": "c-1", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-delta", "index": 0,
         "delta": {"message": {"content": {"text": "Hi"}}}},
        {"type": "message-end", "delta": {"finish_reason": "MAX_TOKENS",
                                          "usage": {"tokens": {"input_tokens": 3,
                                                               "output_tokens": 1}}}}]
    chunks = [c for e in events for c in stream.feed(Event(e["type"], orjson.dumps(e).decode()))]
    assert [c["choices"][0]["delta"] for c in chunks if c["choices"]][1] == {"content": "Hi"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["total_tokens"] == 4


def test_bedrock_request() -> None:
    body = converse_body({"messages": CONVERSATION, "tools": TOOLS, "max_tokens": 20,
                          "tool_choice": {"type": "function",
                                          "function": {"name": "get_weather"}}})
    assert body["system"] == [{"text": "Be terse."}]
    assert body["messages"][1]["content"] == [{"toolUse": {
        "toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}}]
    assert body["messages"][2] == {"role": "user", "content": [{"toolResult": {
        "toolUseId": "call_1", "content": [{"text": "15C"}]}}]}
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    assert body["inferenceConfig"] == {"maxTokens": 20}


def test_bedrock_signs_with_sigv4() -> None:
    provider = ProviderConfig("aws", "bedrock", region="us-west-2", aws_access_key_id="AKID",
                              aws_secret_access_key="secret")
    request = BedrockProvider().chat_request(
        {"messages": [{"role": "user", "content": "hi"}]},
        Deployment(provider, "anthropic.claude-3-haiku-20240307-v1:0"))
    assert request.url == ("https://bedrock-runtime.us-west-2.amazonaws.com/model/"
                           "anthropic.claude-3-haiku-20240307-v1%3A0/converse")
    assert request.headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKID/")
    assert "x-amz-date" in request.headers


def test_bedrock_response_and_stream() -> None:
    # https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
    completion = BedrockProvider().chat_response({
        "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}]}},
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 10, "outputTokens": 3, "totalTokens": 13}}, 1)
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["total_tokens"] == 13
    stream = BedrockStream(1, "")
    feed = [("messageStart", {"role": "assistant"}),
            ("contentBlockStart", {"contentBlockIndex": 0, "start": {
                "toolUse": {"toolUseId": "t1", "name": "f"}}}),
            ("contentBlockDelta", {"contentBlockIndex": 0,
                                   "delta": {"toolUse": {"input": "{\"a\":1}"}}}),
            ("messageStop", {"stopReason": "tool_use"}),
            ("metadata", {"usage": {"inputTokens": 4, "outputTokens": 2}})]
    chunks = [c for kind, data in feed for c in stream.feed(Event(kind, orjson.dumps(data).decode()))]
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"] == "t1"
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == \
        "{\"a\":1}"
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[4]["usage"]["prompt_tokens"] == 4


def test_azure_openai_paths() -> None:
    provider = ProviderConfig("azure", "openai", base_url="https://x.openai.azure.com",
                              api_key="k", api_version="2024-10-21")
    request = OpenAIProvider().chat_request({"messages": [], "stream": True},
                                            Deployment(provider, "gpt4o-prod"))
    assert request.url == ("https://x.openai.azure.com/openai/deployments/gpt4o-prod/"
                           "chat/completions?api-version=2024-10-21")
    assert request.headers["api-key"] == "k" and "authorization" not in request.headers
    assert orjson.loads(request.body)["stream_options"] == {"include_usage": True}


IMAGE = [{"role": "user", "content": [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]


def test_images() -> None:
    assert gemini_body({"messages": IMAGE})["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}}]
    assert converse_body({"messages": IMAGE})["messages"][0]["content"] == [
        {"text": "What is this?"},
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}]
    assert cohere_body({"messages": IMAGE}, "c")["messages"][0]["content"][1] == {
        "type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
