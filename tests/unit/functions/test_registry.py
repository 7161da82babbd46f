"""FunctionRegistry: create/activate, versions, preconditions, failures and persistence."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import delete
from tests.unit.functions.support import (
    MemoryBlobs,
    OpenPlatform,
    Platform,
    handler_zip,
    new_config,
)

from lamina.errors import (
    InvalidParameterValue,
    PreconditionFailed,
    ResourceConflict,
    ResourceNotFound,
)
from lamina.functions import registry as registry_module
from lamina.functions.model import LATEST, Function, State, UpdateStatus
from lamina.functions.package import inspect
from lamina.functions.registry import FunctionRegistry, lambda_timestamp
from lamina.storage.functions import changes_table

V1 = inspect(handler_zip("v1"))
V2 = inspect(handler_zip("v2"))


async def active(registry: FunctionRegistry, name: str = "fn") -> None:
    await registry.wait_active(registry.get(name).latest)


def test_lambda_timestamp_has_milliseconds_and_utc_offset() -> None:
    assert lambda_timestamp(1_700_000_000.25) == "2023-11-14T22:13:20.250+0000"
    assert lambda_timestamp(0) == "1970-01-01T00:00:00.000+0000"


# ------------------------------------------------------------------- create


async def test_create_is_pending_until_the_code_is_unpacked(
    registry: FunctionRegistry, blobs: MemoryBlobs, tmp_path: Path
) -> None:
    created = await registry.create(new_config(memory_mb=256), V1, publish=False)
    assert created.state is State.PENDING
    assert created.last_update_status is UpdateStatus.IN_PROGRESS
    assert created.code_sha256 == V1.sha256_hex
    assert created.code_size == len(V1.data)
    assert created.revision_id
    assert created.last_modified == "2023-11-14T22:13:20.250+0000"
    assert created.memory_mb == 256
    assert blobs.data[V1.sha256_hex] == V1.data

    settled = await registry.wait_active(created)
    assert settled.state is State.ACTIVE
    assert settled.last_update_status is UpdateStatus.SUCCESSFUL
    assert settled.revision_id == created.revision_id
    assert (tmp_path / "code" / V1.sha256_hex / "app.py").is_file()
    assert registry.get("fn").latest == settled
    assert registry.names() == ["fn"]


async def test_wait_active_returns_a_settled_config_at_once(registry: FunctionRegistry) -> None:
    await registry.create(new_config(), V1, publish=False)
    await active(registry)
    settled = registry.get("fn").latest
    assert await registry.wait_active(settled) is settled


async def test_duplicate_create_is_a_conflict(registry: FunctionRegistry) -> None:
    await registry.create(new_config(), V1, publish=False)
    with pytest.raises(ResourceConflict, match="already exist"):
        await registry.create(new_config(), V2, publish=False)
    await active(registry)
    assert registry.get("fn").latest.code_sha256 == V1.sha256_hex


async def test_unknown_function_is_not_found(registry: FunctionRegistry) -> None:
    with pytest.raises(ResourceNotFound, match="arn:aws:lambda:us-east-1:123456789012:function:x"):
        registry.get("x")
    with pytest.raises(ResourceNotFound):
        registry.config("x", None)


async def test_create_that_cannot_be_saved_leaves_nothing_behind(
    memory_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(fn: Function, version: object = None) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(memory_platform.repo, "save_function", broken)
    with pytest.raises(OSError, match="disk full"):
        await memory_platform.registry.create(new_config(), V1, publish=False)
    assert memory_platform.registry.names() == []


async def test_create_with_publish_makes_version_1(registry: FunctionRegistry) -> None:
    latest = await registry.create(new_config(), V1, publish=True)
    assert latest.state is State.ACTIVE  # publishing waited for activation
    version = registry.config("fn", "1")
    assert version.version == "1"
    assert version.code_sha256 == V1.sha256_hex
    assert version.revision_id != latest.revision_id


async def test_activation_that_does_not_finish_in_time_is_a_conflict(
    registry: FunctionRegistry, blobs: MemoryBlobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_get = blobs.get

    def stuck_get(digest: str) -> bytes:
        release.wait(30)
        return real_get(digest)

    monkeypatch.setattr(blobs, "get", stuck_get)
    monkeypatch.setattr(registry_module, "ACTIVATION_WAIT_S", 0.01)
    created = await registry.create(new_config(), V1, publish=False)
    try:
        with pytest.raises(ResourceConflict, match="following state: Pending"):
            await registry.wait_active(created)
    finally:
        release.set()
    monkeypatch.setattr(registry_module, "ACTIVATION_WAIT_S", 30.0)
    assert (await registry.wait_active(created)).state is State.ACTIVE


# -------------------------------------------------------------- versions


async def test_versions_are_numbered_and_frozen(registry: FunctionRegistry) -> None:
    await registry.create(new_config(description="first"), V1, publish=False)
    v1 = await registry.publish("fn", "", None, None)
    assert v1.version == "1"
    assert v1.description == "first"  # the $LATEST description when none is given

    await registry.update_code("fn", V2, publish=False, revision_id=None)
    v2 = await registry.publish("fn", "second", None, None)
    assert v2.version == "2"
    assert v2.description == "second"
    assert v2.code_sha256 == V2.sha256_hex
    assert registry.config("fn", "1").code_sha256 == V1.sha256_hex
    assert registry.get("fn").next_version == 3
    assert sorted(registry.get("fn").versions) == ["1", "2"]


async def test_republishing_an_unchanged_latest_returns_the_same_version(
    registry: FunctionRegistry,
) -> None:
    await registry.create(new_config(), V1, publish=False)
    first = await registry.publish("fn", "", None, None)
    again = await registry.publish("fn", "a different description", None, None)
    assert again == first
    assert registry.get("fn").next_version == 2

    # A configuration change is a change, even with the same code.
    await registry.update_config("fn", {"memory_mb": 512}, None)
    changed = await registry.publish("fn", "", None, None)
    assert changed.version == "2"
    assert changed.memory_mb == 512


async def test_publish_checks_code_sha256(registry: FunctionRegistry) -> None:
    await registry.create(new_config(), V1, publish=False)
    with pytest.raises(PreconditionFailed, match="CodeSHA256") as caught:
        await registry.publish("fn", "", V2.sha256_b64, None)
    assert V1.sha256_b64 in caught.value.message
    assert registry.get("fn").versions == {}
    assert (await registry.publish("fn", "", V1.sha256_b64, None)).version == "1"
    await registry.update_code("fn", V2, publish=False, revision_id=None)
    assert (await registry.publish("fn", "", V2.sha256_hex, None)).version == "2"


async def test_publish_checks_revision_id(registry: FunctionRegistry) -> None:
    created = await registry.create(new_config(), V1, publish=False)
    with pytest.raises(PreconditionFailed, match="Revision Id"):
        await registry.publish("fn", "", None, "not-the-revision")
    assert (await registry.publish("fn", "", None, created.revision_id)).version == "1"


async def test_publish_of_an_unknown_function_is_not_found(registry: FunctionRegistry) -> None:
    with pytest.raises(ResourceNotFound):
        await registry.publish("missing", "", None, None)


async def test_config_resolves_latest_versions_and_aliases(memory_platform: Platform) -> None:
    registry = memory_platform.registry
    await registry.create(new_config(), V1, publish=True)
    await memory_platform.settings.create_alias("fn", "live", "1", "", {})
    assert registry.config("fn", None) is registry.get("fn").latest
    assert registry.config("fn", LATEST) is registry.get("fn").latest
    assert registry.config("fn", "1").version == "1"
    assert registry.config("fn", "live").version == "1"
    with pytest.raises(ResourceNotFound, match="function:fn:9"):
        registry.config("fn", "9")


# ------------------------------------------------------------------ updates


async def test_update_code_changes_revision_and_settles(
    registry: FunctionRegistry, tmp_path: Path
) -> None:
    created = await registry.create(new_config(), V1, publish=False)
    await active(registry)
    updated = await registry.update_code("fn", V2, publish=False, revision_id=created.revision_id)
    assert updated.revision_id != created.revision_id
    assert updated.code_sha256 == V2.sha256_hex
    assert updated.last_update_status is UpdateStatus.IN_PROGRESS
    assert updated.state is State.ACTIVE  # an update never takes an Active function down

    settled = await registry.wait_active(updated)
    assert settled.last_update_status is UpdateStatus.SUCCESSFUL
    assert settled.state is State.ACTIVE
    assert settled.revision_id == updated.revision_id
    assert (tmp_path / "code" / V2.sha256_hex / "app.py").is_file()


async def test_update_code_with_publish_makes_a_version(registry: FunctionRegistry) -> None:
    await registry.create(new_config(), V1, publish=True)
    await registry.update_code("fn", V2, publish=True, revision_id=None)
    assert registry.config("fn", "2").code_sha256 == V2.sha256_hex


async def test_update_with_a_stale_revision_changes_nothing(registry: FunctionRegistry) -> None:
    created = await registry.create(new_config(), V1, publish=False)
    await active(registry)
    before = registry.get("fn").latest
    with pytest.raises(PreconditionFailed):
        await registry.update_code("fn", V2, publish=False, revision_id="stale")
    with pytest.raises(PreconditionFailed):
        await registry.update_config("fn", {"timeout_s": 10}, "stale")
    assert registry.get("fn").latest == before
    assert before.revision_id == created.revision_id


async def test_update_config_is_in_progress_then_successful(registry: FunctionRegistry) -> None:
    await registry.create(new_config(), V1, publish=False)
    await active(registry)
    updated = await registry.update_config("fn", {"timeout_s": 30, "environment": {"A": "1"}}, None)
    assert updated.last_update_status is UpdateStatus.IN_PROGRESS
    settled = await registry.wait_active(updated)
    assert (settled.timeout_s, dict(settled.environment)) == (30, {"A": "1"})
    assert settled.last_update_status is UpdateStatus.SUCCESSFUL


async def test_changes_are_announced(registry: FunctionRegistry) -> None:
    seen: list[str] = []
    registry.on_change.append(lambda fn: seen.append(fn.latest.revision_id))
    await registry.create(new_config(), V1, publish=True)
    await registry.update_config("fn", {"timeout_s": 5}, None)
    await registry.delete("fn", "1")
    await registry.delete("fn", None)
    assert len(seen) == 3


# ----------------------------------------------------------------- failures


async def test_corrupt_blob_fails_the_function_with_a_reason(
    registry: FunctionRegistry, blobs: MemoryBlobs
) -> None:
    blobs.corrupt.add(V1.sha256_hex)
    created = await registry.create(new_config(), V1, publish=False)
    failed = await registry.wait_active(created)  # settled, even if badly: no conflict
    assert failed.state is State.FAILED
    assert failed.last_update_status is UpdateStatus.FAILED
    assert failed.state_reason.startswith("Unpacking the code failed: ")
    assert "not a valid zip" in failed.state_reason
    assert failed.state_reason_code == "InvalidZipFileException"


async def test_failed_code_update_fails_the_function(
    registry: FunctionRegistry, blobs: MemoryBlobs
) -> None:
    await registry.create(new_config(), V1, publish=False)
    await active(registry)
    blobs.corrupt.add(V2.sha256_hex)
    updated = await registry.update_code("fn", V2, publish=False, revision_id=None)
    settled = await registry.wait_active(updated)
    assert settled.last_update_status is UpdateStatus.FAILED
    assert settled.state_reason_code == "InvalidZipFileException"


async def test_good_code_update_recovers_a_failed_function(
    registry: FunctionRegistry, blobs: MemoryBlobs
) -> None:
    blobs.corrupt.add(V1.sha256_hex)
    await registry.create(new_config(), V1, publish=False)
    await active(registry)
    assert registry.get("fn").latest.state is State.FAILED
    updated = await registry.update_code("fn", V2, publish=False, revision_id=None)
    settled = await registry.wait_active(updated)
    assert settled.last_update_status is UpdateStatus.SUCCESSFUL
    assert settled.state is State.ACTIVE


# ----------------------------------------------------------------- deletion


async def test_versions_used_by_an_alias_cannot_be_deleted(memory_platform: Platform) -> None:
    registry = memory_platform.registry
    await registry.create(new_config(), V1, publish=True)
    await registry.update_code("fn", V2, publish=True, revision_id=None)
    await memory_platform.settings.create_alias("fn", "live", "1", "", {"2": 0.1})
    with pytest.raises(ResourceConflict, match=r"aliases reference it: \['live'\]"):
        await registry.delete("fn", "1")
    with pytest.raises(ResourceConflict, match="live"):
        await registry.delete("fn", "2")  # only through the weights
    await memory_platform.settings.delete_alias("fn", "live")
    await registry.delete("fn", "2")
    assert sorted(registry.get("fn").versions) == ["1"]


async def test_latest_and_aliases_are_not_deletable_by_qualifier(memory_platform: Platform) -> None:
    await memory_platform.registry.create(new_config(), V1, publish=True)
    await memory_platform.settings.create_alias("fn", "live", "1", "", {})
    for qualifier in (LATEST, "live"):
        with pytest.raises(InvalidParameterValue, match="not allowed"):
            await memory_platform.registry.delete("fn", qualifier)
    with pytest.raises(ResourceNotFound):
        await memory_platform.registry.delete("fn", "7")


async def test_delete_function_removes_it(platform: Platform, open_platform: OpenPlatform) -> None:
    registry = platform.registry
    await registry.create(new_config(), V1, publish=True)
    await registry.delete("fn", None)
    with pytest.raises(ResourceNotFound):
        registry.get("fn")
    restarted = await open_platform()
    assert restarted.registry.names() == []


# -------------------------------------------------------------- persistence


async def test_everything_survives_a_restart(
    platform: Platform, open_platform: OpenPlatform
) -> None:
    registry, settings = platform.registry, platform.settings
    await registry.create(new_config(environment={"STAGE": "test"}), V1, publish=True)
    await registry.update_code("fn", V2, publish=True, revision_id=None)
    await registry.update_config("fn", {"memory_mb": 1024}, None)
    await active(registry)
    await settings.create_alias("fn", "live", "1", "production", {"2": 0.25})
    await settings.create_alias("fn", "canary", "2", "", {})
    await settings.put_invoke_config("fn", "live", 1, 600, {"OnFailure": "arn:x"}, merge=False)
    await settings.put_concurrency("fn", 50)
    await registry.create(new_config("other", runtime="provided.al2023", handler="x"), V1, False)
    await active(registry, "other")
    before = {name: registry.get(name) for name in registry.names()}

    restarted = await open_platform()
    after = {name: restarted.registry.get(name) for name in restarted.registry.names()}
    assert after.keys() == before.keys() == {"fn", "other"}
    for name, fn in before.items():
        again = after[name]
        assert again.latest == fn.latest
        assert again.versions == fn.versions
        assert again.aliases == fn.aliases
        assert again.event_invoke_configs == fn.event_invoke_configs
        assert again.reserved_concurrency == fn.reserved_concurrency
        assert again.next_version == fn.next_version
        assert again.created == fn.created
    assert after["fn"].aliases["live"].weights == {"2": 0.25}
    assert after["fn"].latest.architectures == ("x86_64",)
    assert restarted.concurrency.reserved("fn") == 50
    # The numbering carries on where it stopped.
    assert (await restarted.registry.publish("fn", "", None, None)).version == "3"


async def test_restart_during_activation_finishes_it(
    platform: Platform, open_platform: OpenPlatform, blobs: MemoryBlobs, tmp_path: Path
) -> None:
    # As if lamina died between saving the function and unpacking its code.
    blobs.put(V1.sha256_hex, V1.data)
    pending = new_config(code_sha256=V1.sha256_hex, code_size=len(V1.data), revision_id="r1")
    await platform.repo.save_function(Function(latest=pending))
    assert pending.state is State.PENDING

    restarted = await open_platform()
    settled = await restarted.registry.wait_active(restarted.registry.get("fn").latest)
    assert settled.state is State.ACTIVE
    assert (tmp_path / "code" / V1.sha256_hex / "app.py").is_file()
    stored = (await platform.repo.load_all())["fn"].latest
    assert stored.state is State.ACTIVE


async def test_close_cancels_unfinished_activations(
    registry: FunctionRegistry, blobs: MemoryBlobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    reading, release = asyncio.Event(), threading.Event()
    real_get = blobs.get

    def stuck_get(digest: str) -> bytes:
        loop.call_soon_threadsafe(reading.set)
        release.wait(30)
        return real_get(digest)

    monkeypatch.setattr(blobs, "get", stuck_get)
    await registry.create(new_config(), V1, publish=False)
    await reading.wait()
    try:
        await registry.close()  # returns although the activation is parked mid-way
    finally:
        release.set()
    assert registry.get("fn").latest.state is State.PENDING


# ------------------------------------------------ another serving process's view


async def test_a_reader_catches_up_on_just_the_functions_that_changed(
    platform: Platform, open_platform: OpenPlatform
) -> None:
    """A worker (serving/worker.py) reads the change log the writes leave, not every
    function again; what it then holds equals a fresh read of everything."""
    writer = platform.registry
    for name in ("a", "b", "c"):
        await writer.create(new_config(name), V1, publish=False)
        await active(writer, name)
    reader = (await open_platform()).registry
    mark, changed = await reader.catch_up(None)  # the first read: everything
    assert set(changed) == {"a", "b", "c"} and all(v is not None for v in changed.values())
    assert mark > 0

    was_a = reader.get("a").latest
    await writer.update_config("a", {"memory_mb": 512}, None)
    await active(writer, "a")
    await writer.delete("b", None)
    await writer.create(new_config("d"), V1, publish=True)
    await active(writer, "d")
    await platform.settings.put_concurrency("d", 7)

    mark2, changed = await reader.catch_up(mark)
    assert mark2 > mark
    assert set(changed) == {"a", "b", "d"}  # not "c": it did not change
    assert changed["a"] == was_a and changed["d"] is None
    assert reader.get("a").latest.memory_mb == 512
    assert reader.get("d").reserved_concurrency == 7 and "1" in reader.get("d").versions
    with pytest.raises(ResourceNotFound):
        reader.get("b")
    assert await reader.catch_up(mark2) == (mark2, {})  # nothing since
    fresh = (await open_platform()).registry
    assert {n: fresh.get(n) for n in fresh.names()} == {n: reader.get(n) for n in reader.names()}


async def test_a_reader_behind_a_forgotten_change_reads_everything(
    platform: Platform, open_platform: OpenPlatform
) -> None:
    writer = platform.registry
    await writer.create(new_config("a"), V1, publish=False)
    await active(writer, "a")
    reader = (await open_platform()).registry
    mark, _ = await reader.catch_up(None)
    await writer.create(new_config("b"), V1, publish=False)
    await active(writer, "b")
    await writer.update_config("a", {"timeout_s": 9}, None)
    await active(writer, "a")
    # The log keeps a bounded tail (CHANGES_KEPT): as if the oldest of these went.
    engine = platform.repo._engine
    async with engine.begin() as conn:
        await conn.execute(delete(changes_table).where(changes_table.c.seq == mark + 1))
    _, changed = await reader.catch_up(mark)
    assert set(changed) == {"a", "b"}  # every function, read again
    assert reader.get("a").latest.timeout_s == 9 and reader.get("b").latest.name == "b"
