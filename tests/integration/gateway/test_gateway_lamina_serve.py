"""The gateway inside a real `lamina serve --config FILE`, driven by both SDKs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml

from tests.integration.gateway.harness import APP_KEY, ENV, Mocks, base_config
from tests.integration.support import SECRET_KEY, LaminaServer

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "hello"}]


async def test_lamina_serve_serves_the_gateway(tmp_path: Path, mocks: Mocks) -> None:
    config_file = tmp_path / "lamina.yaml"
    config_file.write_text(yaml.safe_dump({"gateway": base_config(mocks)}))
    server = LaminaServer(tmp_path / "data", extra_env=dict(ENV),
                          args=["--config", str(config_file)])
    (tmp_path / "data").mkdir()
    await asyncio.to_thread(server.start)
    try:
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
    except Exception:
        print(server.log_text())
        raise
    finally:
        await asyncio.to_thread(server.stop)
    assert (reply.choices[0].message.content or "").endswith("says: hello")
    assert chunks[-1].usage is not None
    assert message.content[0].type == "text" and message.stop_reason == "end_turn"
    assert {row["model"]: row["requests"] for row in usage} == {"claude": 1, "gpt": 2}
