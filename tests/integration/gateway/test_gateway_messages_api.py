"""The anthropic SDK against lamina's /v1/messages, routed to Anthropic- and
OpenAI-speaking providers."""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.integration.gateway.harness import OTHER_KEY, Launch, Mocks, base_config

HELLO: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hello"}]
TOOLS = [{"name": "get_weather", "description": "Weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}]


@pytest.mark.parametrize("model", ["claude", "gpt", "gemini", "command", "nova"])
async def test_message(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw:
        reply = await gw.anthropic().messages.create(
            model=model, max_tokens=100, system="Be brief.",
            messages=[{"role": "user", "content": "hello"}], stop_sequences=["END"])
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.content[0].type == "text"
    assert reply.content[0].text.endswith("says: hello")
    assert reply.stop_reason == "end_turn"
    assert reply.usage.output_tokens > 0
    if model == "gpt":
        sent = mocks.openai.requests[-1]
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert sent["stop"] == ["END"] and sent["max_tokens"] == 100
    elif model == "nova":
        sent = mocks.bedrock.requests[-1]
        assert sent["inferenceConfig"] == {"maxTokens": 100, "stopSequences": ["END"]}
    elif model == "command":
        sent = mocks.cohere.requests[-1]
        assert sent["stop_sequences"] == ["END"] and sent["max_tokens"] == 100
    elif model == "gemini":
        sent = mocks.gemini.requests[-1]
        assert sent["generationConfig"] == {"maxOutputTokens": 100, "stopSequences": ["END"]}
    else:
        sent = mocks.anthropic.requests[-1]
        assert sent["stop_sequences"] == ["END"] and sent["max_tokens"] == 100


@pytest.mark.parametrize("model", ["claude", "gpt", "gemini", "command", "nova"])
async def test_message_stream(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw, gw.anthropic().messages.stream(
            model=model, max_tokens=100,
            messages=[{"role": "user", "content": "stream please"}]) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert final.content[0].type == "text"
    assert final.content[0].text.endswith("says: stream please")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["claude", "gpt", "gemini", "command", "nova"])
async def test_tool_use_round_trip(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw:
        client = gw.anthropic()
        messages: list[anthropic.types.MessageParam] = [
            {"role": "user", "content": "Weather in Paris?"}]
        first = await client.messages.create(model=model, max_tokens=100, tools=TOOLS,
                                             messages=messages)
        tool = next(b for b in first.content if b.type == "tool_use")
        assert first.stop_reason == "tool_use"
        assert tool.name == "get_weather" and tool.input == {"city": "Paris"}
        messages += [{"role": "assistant", "content": first.content},
                     {"role": "user", "content": [{"type": "tool_result",
                                                   "tool_use_id": tool.id,
                                                   "content": "sunny"}]}]
        second = await client.messages.create(model=model, max_tokens=100, tools=TOOLS,
                                              messages=messages)
    assert second.stop_reason == "end_turn"
    if model == "gpt":
        sent = mocks.openai.requests[-1]
        assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1",
                                       "content": "sunny"}


@pytest.mark.parametrize("model", ["claude", "gpt", "gemini", "command", "nova"])
async def test_streamed_tool_input(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw, gw.anthropic().messages.stream(
            model=model, max_tokens=100, tools=TOOLS,
            messages=[{"role": "user", "content": "Weather?"}]) as stream:
        partials = [e.partial_json async for e in stream if e.type == "input_json"]
        final = await stream.get_final_message()
    tool = next(b for b in final.content if b.type == "tool_use")
    assert tool.input == {"city": "Paris"}
    assert json.loads("".join(partials)) == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


async def test_errors_in_anthropic_shape(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        with pytest.raises(anthropic.AuthenticationError) as bad_key:
            await gw.anthropic("nope").messages.create(
                model="claude", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.PermissionDeniedError) as not_allowed:
            await gw.anthropic(OTHER_KEY).messages.create(
                model="claude", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.NotFoundError):
            await gw.anthropic().messages.create(
                model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert bad_key.value.body == {"type": "error", "error": {
        "type": "authentication_error", "message": "invalid API key"}}
    assert isinstance(not_allowed.value.body, dict)
    assert not_allowed.value.body["error"]["type"] == "permission_error"


async def test_count_tokens(launch: Launch, mocks: Mocks) -> None:
    messages: list[anthropic.types.MessageParam] = [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}]
    async with launch(base_config(mocks)) as gw:
        client = gw.anthropic()
        claude = await client.messages.count_tokens(model="claude", messages=messages,
                                                    system="s")
        gemini = await client.messages.count_tokens(model="gemini", messages=messages)
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.count_tokens(model="gpt", messages=messages)
    assert claude.input_tokens == 21 and gemini.input_tokens == 15
    assert mocks.anthropic.requests[-1]["system"] == "s"  # as the client wrote it
    assert "count tokens" in refused.value.message


async def test_anthropic_sdk_lists_models(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        models = [m.id async for m in gw.anthropic(OTHER_KEY).models.list()]
        with pytest.raises(anthropic.AuthenticationError):
            await gw.anthropic("nope").models.list()
    assert models == ["gpt"]


@pytest.mark.parametrize("model", ["claude", "gpt"])
async def test_anthropic_only_fields(launch: Launch, mocks: Mocks, model: str) -> None:
    system: list[anthropic.types.TextBlockParam] = [
        {"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral"}}]
    async with launch(base_config(mocks)) as gw:
        reply = await gw.anthropic().messages.create(
            model=model, max_tokens=50, system=system, messages=HELLO,
            extra_body={"top_k": 5})
    assert reply.content[0].type == "text"
    if model == "claude":  # reaches Anthropic as written
        sent = mocks.anthropic.requests[-1]
        assert sent["system"] == system and sent["top_k"] == 5
    else:  # other providers get the translation, and nothing of lamina's own
        sent = mocks.openai.requests[-1]
        assert "_anthropic" not in sent and "top_k" not in sent
        assert sent["messages"][0] == {"role": "system", "content": "A long manual."}


@pytest.mark.parametrize("stream", [False, True])
async def test_thinking_blocks_reach_anthropic_clients(launch: Launch, mocks: Mocks,
                                                       stream: bool) -> None:
    thinking: anthropic.types.ThinkingConfigParam = {"type": "enabled", "budget_tokens": 1024}
    async with launch(base_config(mocks)) as gw:
        client = gw.anthropic()
        if stream:
            async with client.messages.stream(model="claude", max_tokens=2048, messages=HELLO,
                                              thinking=thinking) as events:
                reply = await events.get_final_message()
        else:
            reply = await client.messages.create(model="claude", max_tokens=2048,
                                                 messages=HELLO, thinking=thinking)
        plain = await gw.openai().chat.completions.create(model="claude", messages=HELLO)
    block = reply.content[0]
    assert block.type == "thinking" and block.signature == "sig-123"
    assert reply.content[1].type == "text"
    assert plain.choices[0].message.content == "anthropic-mock says: hello"
    assert "_anthropic" not in plain.model_dump()


async def test_blocks_only_anthropic_can_take(launch: Launch, mocks: Mocks) -> None:
    document: list[anthropic.types.MessageParam] = [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "The manual."}},
        {"type": "text", "text": "Summarize."}]}]
    async with launch(base_config(mocks)) as gw:
        client = gw.anthropic()
        reply = await client.messages.create(model="claude", max_tokens=10, messages=document)
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(model="gpt", max_tokens=10, messages=document)
    assert reply.content[0].type == "text"
    assert mocks.anthropic.requests[-1]["messages"][0]["content"][0]["type"] == "document"
    assert "document" in refused.value.message and mocks.openai.requests == []
