"""The openai SDK against lamina's /v1, routed to OpenAI- and Anthropic-speaking
providers."""

from __future__ import annotations

import json

import openai
import pytest

from tests.integration.gateway.harness import APP_KEY, Launch, Mocks, base_config

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini", "command", "nova"])
async def test_chat_completion(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw:
        client = gw.openai()
        reply = await client.chat.completions.create(
            model=model, messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content is not None
    assert reply.choices[0].message.content.endswith("says: hello")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    if model == "claude":
        sent = mocks.anthropic.requests[-1]
        assert sent["system"] == [{"type": "text", "text": "Be brief."}]
        assert sent["model"] == "claude-3-5-haiku-latest"
        assert mocks.anthropic.headers[-1]["x-api-key"] == "sk-upstream-anthropic"
        assert reply.usage.prompt_tokens == 14  # input + cache reads
    elif model == "nova":
        sent = mocks.bedrock.requests[-1]
        assert sent["system"] == [{"text": "Be brief."}]
        assert "/eu-west-1/bedrock/aws4_request" in mocks.bedrock.headers[-1]["authorization"]
        assert reply.usage.prompt_tokens == 13
    elif model == "command":
        assert mocks.cohere.requests[-1]["messages"][0] == {"role": "system",
                                                             "content": "Be brief."}
        assert mocks.cohere.headers[-1]["authorization"] == "Bearer co-key"
        assert reply.usage.prompt_tokens == 11
    elif model == "gemini":
        assert mocks.gemini.requests[-1]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert mocks.gemini.headers[-1]["x-goog-api-key"] == "gm-key"
    else:
        assert mocks.openai.requests[-1]["model"] == "gpt-4o-mini"
        assert mocks.openai.headers[-1]["authorization"] == "Bearer sk-upstream-openai"


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini", "command", "nova"])
async def test_chat_stream_with_usage(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw:
        stream = await gw.openai().chat.completions.create(
            model=model, messages=[{"role": "user", "content": "stream please"}],
            stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("says: stream please")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


async def test_stream_without_usage_withholds_usage_chunk(launch: Launch,
                                                          mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        stream = await gw.openai().chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True)
        chunks = [chunk async for chunk in stream]
    assert all(c.usage is None for c in chunks)
    assert mocks.openai.requests[-1]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini", "command", "nova"])
async def test_tool_calls_round_trip(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw:
        client = gw.openai()
        messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
        first = await client.chat.completions.create(model=model, messages=messages,
                                                     tools=TOOLS, tool_choice="auto")
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert first.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
        second = await client.chat.completions.create(model=model, messages=messages,
                                                      tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    if model == "gemini":
        sent = mocks.gemini.requests[-1]
        assert sent["contents"][1]["parts"][0]["functionCall"] == {
            "name": "get_weather", "args": {"city": "Paris"}}
        assert sent["contents"][2]["parts"][0]["functionResponse"] == {
            "name": "get_weather", "response": {"content": "sunny"}}
    if model == "claude":
        sent = mocks.anthropic.requests[-1]
        assert sent["tools"][0]["input_schema"]["required"] == ["city"]
        assert sent["messages"][1]["content"][-1]["type"] == "tool_use"
        assert sent["messages"][2]["content"][0] == {
            "type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"}


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini", "command", "nova"])
async def test_streamed_tool_call_arguments(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw:
        stream = await gw.openai().chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS,
            stream=True)
        chunks = [chunk async for chunk in stream]
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_models_and_embeddings(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        client = gw.openai()
        models = [m.id async for m in client.models.list()]
        vectors = await client.embeddings.create(model="embed", input=["a", "b"])
    assert models == ["gpt", "claude", "embed", "gemini", "gemini-embed", "command",
                      "cohere-embed", "nova", "gpt-native"]
    assert [d.index for d in vectors.data] == [0, 1]
    assert vectors.usage.prompt_tokens == 6


async def test_empty_config_lists_no_models(launch: Launch) -> None:
    async with launch({}) as gw:
        from tests.integration.gateway.harness import ROOT_SECRET

        models = [m async for m in gw.openai(ROOT_SECRET).models.list()]
        with pytest.raises(openai.AuthenticationError):
            await gw.openai(APP_KEY).models.list()
    assert models == []


async def test_gemini_and_cohere_embeddings(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        vectors = await gw.openai().embeddings.create(model="gemini-embed", input=["a", "b"])
        cohere = await gw.openai().embeddings.create(model="cohere-embed", input="a")
    assert cohere.data[0].embedding == [0.25, 0.0] and cohere.usage.prompt_tokens == 2
    assert [d.embedding for d in vectors.data] == [[0.5, 0.0], [0.5, 1.0]]
    assert mocks.gemini.requests[-1]["requests"][1] == {
        "model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}}


SCHEMA = {"type": "json_schema", "json_schema": {"name": "weather", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_on_anthropic(launch: Launch, mocks: Mocks, stream: bool) -> None:
    async with launch(base_config(mocks)) as gw:
        client = gw.openai()
        if stream:
            chunks = [c async for c in await client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "city?"}],
                response_format=SCHEMA, stream=True)]  # type: ignore[call-overload]
            content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        else:
            reply = await client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "city?"}],
                response_format=SCHEMA)  # type: ignore[call-overload]
            content, finish = reply.choices[0].message.content, reply.choices[0].finish_reason
    assert json.loads(content) == {"city": "Paris"} and finish == "stop"
    sent = mocks.anthropic.requests[-1]
    assert sent["tool_choice"] == {"type": "tool", "name": "lamina_json_output"}
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
