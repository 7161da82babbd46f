"""The openai SDK's Responses API against lamina (stateless), over every provider."""

from __future__ import annotations

import json

import openai
import pytest
from sqlalchemy import select

from tests.integration.gateway.harness import Launch, Mocks, base_config

TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}]
MODELS = ["gpt", "claude", "gemini", "command", "nova"]


@pytest.mark.parametrize("model", MODELS)
async def test_response_text(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw:
        reply = await gw.openai().responses.create(model=model, input="hello",
                                                   instructions="Be brief.")
    assert reply.status == "completed"
    assert reply.output_text.endswith("says: hello")
    assert reply.usage is not None and reply.usage.total_tokens > 0


@pytest.mark.parametrize("model", MODELS)
async def test_response_tool_round_trip(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw:
        client = gw.openai()
        first = await client.responses.create(model=model, input="Weather in Paris?",
                                              tools=TOOLS)  # type: ignore[arg-type]
        call = next(item for item in first.output if item.type == "function_call")
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
        second = await client.responses.create(model=model, tools=TOOLS,  # type: ignore[arg-type]
                                               input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name,
             "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert second.output_text


@pytest.mark.parametrize("model", MODELS)
async def test_response_stream(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw, \
            gw.openai().responses.stream(model=model, input="stream please") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert final.output_text.endswith("says: stream please")


@pytest.mark.parametrize("model", MODELS)
async def test_response_stream_tool_call(launch: Launch, mocks: Mocks, model: str) -> None:
    async with launch(base_config(mocks)) as gw:
        stream = await gw.openai().responses.create(model=model, input="Weather?",
                                                    tools=TOOLS,  # type: ignore[arg-type]
                                                    stream=True)
        events = [event async for event in stream]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert json.loads("".join(deltas)) == {"city": "Paris"}
    done = events[-1]
    assert done.type == "response.completed"
    calls = [i for i in done.response.output if i.type == "function_call"]
    assert calls[0].name == "get_weather"
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_previous_response_id_is_refused(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        with pytest.raises(openai.BadRequestError):
            await gw.openai().responses.create(model="gpt", input="x",
                                               previous_response_id="resp_1")


async def test_native_responses_pass_through(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        client = gw.openai()
        reply = await client.responses.create(
            model="gpt-native", input="hi", previous_response_id="resp_prev",
            tools=[{"type": "web_search"}], reasoning={"effort": "low"})
        chat = await client.chat.completions.create(
            model="gpt-native", messages=[{"role": "user", "content": "hello"}])
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="gpt", input="x",
                                          tools=[{"type": "web_search"}])
    sent = mocks.openai.requests[0]
    assert sent["previous_response_id"] == "resp_prev" and sent["model"] == "gpt-5-mini"
    assert sent["tools"] == [{"type": "web_search"}] and sent["reasoning"] == {"effort": "low"}
    assert [item.type for item in reply.output] == ["reasoning", "message"]
    assert reply.output_text == "openai-mock responds: hi"
    assert reply.usage is not None and reply.usage.output_tokens_details.reasoning_tokens == 4
    assert chat.choices[0].message.content == "openai-mock says: hello"  # chat stays chat
    assert "web_search" in refused.value.message


async def test_native_responses_stream(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        async with gw.openai().responses.stream(model="gpt-native", input="stream") as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
        await gw.gateway.drain()
        async with gw.gateway.engine.connect() as conn:
            row = (await conn.execute(select(gw.gateway.tables.usage))).one()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_item.added") == 2  # reasoning item passed through
    assert final.output_text == "openai-mock responds: stream"
    assert (row.api, row.prompt_tokens, row.completion_tokens, row.stream) == \
        ("responses", 21, 9, True)
