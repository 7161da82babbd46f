"""The admin API (root credentials), usage totals, config reload, prompt endpoints."""

from __future__ import annotations

import collections
import os
import random
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.integration.gateway.harness import (
    APP_KEY,
    ROOT_ID,
    ROOT_SECRET,
    Launch,
    Mocks,
    base_config,
)

HELLO = [{"role": "user", "content": "hello"}]
ROOT = {"authorization": f"Bearer {ROOT_SECRET}"}


async def test_admin_needs_root_credentials(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        anonymous = await http.get("/gateway/admin/keys")
        app_key = await http.get("/gateway/admin/keys",
                                 headers={"authorization": f"Bearer {APP_KEY}"})
        named = await http.get("/gateway/admin/keys",
                               headers={"authorization": f"Bearer {ROOT_ID}:{ROOT_SECRET}"})
    assert anonymous.status_code == app_key.status_code == 401
    assert named.status_code == 200


async def test_key_lifecycle(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw, httpx.AsyncClient(base_url=gw.url,
                                                                   headers=ROOT) as http:
        created = await http.post("/gateway/admin/keys", json={
            "name": "fn-thumbnail", "models": ["gpt"], "rpm": 100, "budget_usd": 5,
            "budget_period": "month", "metadata": {"function": "thumbnail"}})
        assert created.status_code == 201
        key = created.json()
        reply = await gw.openai(key["key"]).chat.completions.create(model="gpt", messages=HELLO)
        assert reply.choices[0].message.content
        with pytest.raises(openai.PermissionDeniedError):
            await gw.openai(key["key"]).chat.completions.create(model="claude", messages=HELLO)

        listed = (await http.get("/gateway/admin/keys")).json()["data"]
        assert {k["name"] for k in listed} == {"app", "other", "fn-thumbnail"}
        assert all("key" not in k for k in listed)

        rotated = (await http.post(f"/gateway/admin/keys/{key['id']}/rotate")).json()
        with pytest.raises(openai.AuthenticationError):
            await gw.openai(key["key"]).chat.completions.create(model="gpt", messages=HELLO)
        await gw.openai(rotated["key"]).chat.completions.create(model="gpt", messages=HELLO)

        revoked = await http.post(f"/gateway/admin/keys/{key['id']}/revoke")
        assert revoked.json()["revoked"] is True
        with pytest.raises(openai.AuthenticationError) as refused:
            await gw.openai(rotated["key"]).chat.completions.create(model="gpt", messages=HELLO)
        assert "revoked" in refused.value.message
        missing = await http.post("/gateway/admin/keys/key_nope/revoke")
    assert missing.status_code == 404


async def test_admin_keys_survive_restart(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw, httpx.AsyncClient(base_url=gw.url,
                                                                   headers=ROOT) as http:
        secret = (await http.post("/gateway/admin/keys", json={"name": "k"})).json()["key"]
    async with launch(base_config(mocks)) as gw:
        await gw.openai(secret).chat.completions.create(model="claude", messages=HELLO)


async def test_expired_key_is_refused(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["keys"][0]["expires_at"] = "2020-01-01T00:00:00+00:00"
    async with launch(config) as gw:
        with pytest.raises(openai.AuthenticationError) as refused:
            await gw.openai().chat.completions.create(model="gpt", messages=HELLO)
    assert "expired" in refused.value.message


async def test_usage_totals(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw, httpx.AsyncClient(base_url=gw.url,
                                                                   headers=ROOT) as http:
        client = gw.openai()
        await client.chat.completions.create(model="gpt", messages=HELLO)
        await client.chat.completions.create(model="claude", messages=HELLO)
        await client.chat.completions.create(model="claude", messages=HELLO)
        by_model = (await http.get("/gateway/admin/usage?group_by=model")).json()["data"]
        by_key = (await http.get("/gateway/admin/usage", params={"group_by": "key"})).json()
        future = (await http.get("/gateway/admin/usage?from=9999999999")).json()["data"]
        bad = await http.get("/gateway/admin/usage?group_by=colour")
    assert [(r["model"], r["requests"]) for r in by_model] == [("claude", 2), ("gpt", 1)]
    assert by_model[0]["prompt_tokens"] == 28 and by_model[0]["cost_usd"] > 0
    assert by_key["data"][0]["key"] == "app" and by_key["data"][0]["requests"] == 3
    assert future == [] and bad.status_code == 400


async def test_reload_swaps_configuration(launch: Launch, mocks: Mocks,
                                          tmp_path: Path) -> None:
    config = base_config(mocks)
    config_file = tmp_path / "lamina.yaml"
    config_file.write_text(yaml.safe_dump({"gateway": config}))
    async with launch(config, config_file=config_file) as gw, \
            httpx.AsyncClient(base_url=gw.url, headers=ROOT) as http:
        config["models"].append({"name": "new", "routes": [
            {"provider": "claude", "model": "claude-3-5-haiku-latest"}]})
        config_file.write_text(yaml.safe_dump({"gateway": config}))
        reloaded = await http.post("/gateway/admin/reload")
        models = [m.id async for m in gw.openai().models.list()]
        config_file.write_text(yaml.safe_dump({"gateway": {"models": [{"name": "x"}]}}))
        broken = await http.post("/gateway/admin/reload")
        still = [m.id async for m in gw.openai().models.list()]
    assert reloaded.status_code == 200 and "new" in models
    assert broken.status_code == 400 and "routes" in broken.json()["error"]["message"]
    assert still == models


async def test_prompt_endpoint(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["prompts"] = [
        {"name": "summarize", "model": "claude", "template": "Old {{text}}", "version": 1},
        {"name": "summarize", "model": "claude", "version": 2,
         "template": "Summarize in {{words}} words:\n{{text}}"}]
    async with launch(config) as gw, httpx.AsyncClient(
            base_url=gw.url, headers={"authorization": f"Bearer {APP_KEY}"}) as http:
        listing = (await http.get("/gateway/prompts")).json()["data"]
        latest = await http.post("/gateway/prompts/summarize",
                                 json={"variables": {"words": 5, "text": "a long story"}})
        first = await http.post("/gateway/prompts/summarize",
                                json={"variables": {"text": "t"}, "version": 1})
        missing = await http.post("/gateway/prompts/summarize", json={"variables": {}})
        async with http.stream("POST", "/gateway/prompts/summarize?stream=true",
                               json={"variables": {"words": 3, "text": "x"}}) as streamed:
            lines = [line async for line in streamed.aiter_lines() if line.startswith("data:")]
    assert listing == [{"name": "summarize", "model": "claude", "versions": [1, 2],
                        "variables": ["words", "text"]}]
    assert latest.status_code == 200
    assert latest.json()["choices"][0]["message"]["content"].endswith(
        "Summarize in 5 words:\na long story")
    assert first.headers["x-lamina-prompt-version"] == "1"
    assert missing.status_code == 400 and "words" in missing.json()["error"]["message"]
    assert lines[-1] == "data: [DONE]"


async def test_weighted_routes_spread_load(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["models"][0]["routes"] = [
        {"provider": "openai-main", "model": "gpt-4o-mini", "weight": 3},
        {"provider": "claude", "model": "claude-3-5-haiku-latest", "weight": 1}]
    async with launch(config, rng=random.Random(7)) as gw:
        client = gw.openai()
        providers: collections.Counter[str] = collections.Counter()
        for _ in range(40):
            reply = await client.chat.completions.with_raw_response.create(
                model="gpt", messages=HELLO)
            providers[reply.headers["x-lamina-provider"]] += 1
    assert providers["openai-main"] > providers["claude"] > 0


async def test_config_file_change_is_picked_up(launch: Launch, mocks: Mocks,
                                               tmp_path: Path) -> None:
    config = base_config(mocks)
    config_file = tmp_path / "lamina.yaml"
    config_file.write_text(yaml.safe_dump({"gateway": config}))
    async with launch(config, config_file=config_file) as gw:
        assert not await gw.gateway.reload_if_changed()
        config["models"].append({"name": "later", "routes": [
            {"provider": "claude", "model": "claude-3-5-haiku-latest"}]})
        config_file.write_text(yaml.safe_dump({"gateway": config}))
        os.utime(config_file, (1, 1))  # a different mtime, whatever the clock's grain
        assert await gw.gateway.reload_if_changed()
        models = [m.id async for m in gw.openai().models.list()]
    assert "later" in models


async def test_admin_key_with_expiry(launch: Launch, mocks: Mocks) -> None:
    async with launch(base_config(mocks)) as gw, httpx.AsyncClient(base_url=gw.url,
                                                                   headers=ROOT) as http:
        past = (await http.post("/gateway/admin/keys", json={
            "name": "old", "expires_at": "2020-01-01T00:00:00+00:00"})).json()
        future = (await http.post("/gateway/admin/keys", json={
            "name": "new", "expires_at": 4102444800})).json()
        bad = await http.post("/gateway/admin/keys", json={"name": "x", "expires_at": "soon"})
        with pytest.raises(openai.AuthenticationError):
            await gw.openai(past["key"]).models.list()
        await gw.openai(future["key"]).models.list()
    assert past["expires_at"] == 1577836800.0 and bad.status_code == 400


async def test_publish_prompt_versions(launch: Launch, mocks: Mocks) -> None:
    config = base_config(mocks)
    config["prompts"] = [{"name": "greet", "model": "claude", "template": "Hi {{who}}"}]
    user = {"authorization": f"Bearer {APP_KEY}"}
    async with launch(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        published = await http.post("/gateway/admin/prompts", headers=ROOT, json={
            "name": "greet", "model": "gpt", "template": "Hello there, {{who}}"})
        bad = await http.post("/gateway/admin/prompts", headers=ROOT, json={
            "name": "greet", "model": "nope", "template": "x"})
        latest = await http.post("/gateway/prompts/greet", headers=user,
                                 json={"variables": {"who": "Ada"}})
        pinned = await http.post("/gateway/prompts/greet", headers=user,
                                 json={"variables": {"who": "Ada"}, "version": 1})
    async with launch(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        listing = (await http.get("/gateway/admin/prompts", headers=ROOT)).json()["data"]
    assert published.status_code == 201 and published.json()["version"] == 2
    assert bad.status_code == 400
    assert latest.json()["choices"][0]["message"]["content"] == \
        "openai-mock says: Hello there, Ada"
    assert pinned.json()["choices"][0]["message"]["content"] == "anthropic-mock says: Hi Ada"
    assert [(p["name"], p["version"], p["model"]) for p in listing] == [
        ("greet", 1, "claude"), ("greet", 2, "gpt")]
