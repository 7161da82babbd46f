"""The gateway inside a real `lamina serve --config FILE`, driven by both SDKs."""

from __future__ import annotations

from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.integration.gateway.harness import APP_KEY, Mocks, base_config, lamina_serving
from tests.integration.support import SECRET_KEY

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "hello"}]


async def test_lamina_serve_serves_the_gateway(tmp_path: Path, mocks: Mocks) -> None:
    async with lamina_serving(tmp_path, base_config(mocks)) as server:
        oa = openai.AsyncOpenAI(base_url=f"{server.endpoint}/v1", api_key=APP_KEY,
                                max_retries=0)
        an = anthropic.AsyncAnthropic(base_url=server.endpoint, api_key=APP_KEY, max_retries=0)
        reply = await oa.chat.completions.create(model="claude", messages=HELLO)
        chunks = [c async for c in await oa.chat.completions.create(
            model="gpt", messages=HELLO, stream=True, stream_options={"include_usage": True})]
        async with an.messages.stream(model="gpt", max_tokens=10, messages=HELLO) as stream:
            message = await stream.get_final_message()
        with pytest.raises(openai.AuthenticationError):
            await openai.AsyncOpenAI(base_url=f"{server.endpoint}/v1", api_key="nope",
                                     max_retries=0).models.list()
        async with httpx.AsyncClient(base_url=server.endpoint) as http:
            usage = (await http.get("/gateway/admin/usage?group_by=model", headers={
                "authorization": f"Bearer {SECRET_KEY}"})).json()["data"]
        await oa.close()
        await an.close()
    assert (reply.choices[0].message.content or "").endswith("says: hello")
    assert chunks[-1].usage is not None
    assert message.content[0].type == "text" and message.stop_reason == "end_turn"
    assert {row["model"]: row["requests"] for row in usage} == {"claude": 1, "gpt": 2}
