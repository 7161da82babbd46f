"""Function-scoped keys: the SDKs inside a function configured from the environment
lamina gives it, with the function's own limits and usage attribution."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from lamina.gateway import FunctionGrant
from tests.integration.gateway.harness import ROOT_SECRET, Launch, Mocks, base_config

HELLO = [{"role": "user", "content": "hello"}]


async def test_function_environment_drives_both_sdks(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw:
        env = gw.gateway.function_environment(
            FunctionGrant("thumbnail", models=frozenset({"gpt", "claude"}), rpm=3), gw.url)
        again = gw.gateway.function_environment(FunctionGrant("thumbnail", rpm=3), gw.url)
        oa = openai.AsyncOpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"],
                                max_retries=0)
        an = anthropic.AsyncAnthropic(base_url=env["ANTHROPIC_BASE_URL"],
                                      api_key=env["ANTHROPIC_API_KEY"], max_retries=0)
        await oa.chat.completions.create(model="gpt", messages=HELLO)
        await an.messages.create(model="claude", max_tokens=10, messages=HELLO)
        await oa.chat.completions.create(model="gpt", messages=HELLO)
        with pytest.raises(openai.RateLimitError):
            await oa.chat.completions.create(model="gpt", messages=HELLO)
        await gw.openai().chat.completions.create(model="gpt", messages=HELLO)
        async with httpx.AsyncClient(base_url=gw.url) as http:
            usage = (await http.get("/gateway/usage?group_by=function", headers={
                "authorization": f"Bearer {ROOT_SECRET}"})).json()["data"]
        await oa.close()
        await an.close()
    assert again == env  # derived, not random: stable for the function
    # The refused call is a call too: recorded with its 429.
    assert [(r["function"], r["requests"], r["errors"]) for r in usage] == [("thumbnail", 4, 1)]
