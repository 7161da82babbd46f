"""SecretStore: versions and staging labels, deletion windows, lookups, encryption at rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.unit.secrets.support import FakeClock

from lamina.secrets import KeyStore, ListFilter, SecretStore, SecretValue
from lamina.secrets.errors import (
    DecryptionFailure,
    EncryptionFailure,
    InvalidParameterException,
    InvalidRequestException,
    ResourceExistsException,
    ResourceNotFoundException,
)
from lamina.secrets.secret_model import (
    AWSCURRENT,
    AWSPREVIOUS,
    MARKED_FOR_DELETION,
    Secret,
    move_stages,
)
from lamina.secrets.secret_tables import sm_versions

REGION = "us-east-1"
TOKEN_A = "a" * 32
TOKEN_B = "b" * 32


def text(value: str) -> SecretValue:
    return SecretValue(string=value)


async def test_create_and_get(secrets_store: SecretStore) -> None:
    secret, version = await secrets_store.create_secret(
        "db/password", region=REGION, value=text("hunter2"), description="db"
    )
    assert secret.arn.startswith(
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:db/password-"
    )
    assert (
        len(secret.arn)
        == len("arn:aws:secretsmanager:us-east-1:000000000000:secret:db/password-") + 6
    )
    assert version is not None
    for secret_id in ("db/password", secret.arn, secret.arn[:-7]):
        got = await secrets_store.get_secret_value(secret_id)
        assert got.value.string == "hunter2" and got.stages == (AWSCURRENT,)
    assert "hunter2" not in repr(got) and "hunter2" not in repr(got.value)
    with pytest.raises(ResourceNotFoundException):
        await secrets_store.get_secret_value("db/other")
    with pytest.raises(ResourceNotFoundException):
        await secrets_store.get_secret_value(secret.arn[:-1] + "x")


async def test_binary_values(secrets_store: SecretStore) -> None:
    await secrets_store.create_secret("bin", region=REGION, value=SecretValue(binary=b"\x00\xff"))
    got = await secrets_store.get_secret_value("bin")
    assert got.value.binary == b"\x00\xff" and got.value.string is None


async def test_value_rules() -> None:
    with pytest.raises(InvalidParameterException):
        SecretValue(string="a", binary=b"a")
    with pytest.raises(InvalidParameterException):
        SecretValue(string="x" * 65_537)


async def test_duplicate_names(secrets_store: SecretStore) -> None:
    await secrets_store.create_secret("dup", region=REGION, value=text("1"))
    with pytest.raises(ResourceExistsException):
        await secrets_store.create_secret("dup", region=REGION, value=text("2"))


async def test_versions_rotate_current_and_previous(secrets_store: SecretStore) -> None:
    _, v1 = await secrets_store.create_secret("s", region=REGION, value=text("one"))
    v2 = await secrets_store.put_secret_value("s", text("two"))
    v3 = await secrets_store.put_secret_value("s", text("three"))
    assert (await secrets_store.get_secret_value("s")).value.string == "three"
    previous = await secrets_store.get_secret_value("s", version_stage=AWSPREVIOUS)
    assert previous.version_id == v2.version_id and previous.value.string == "two"
    old = await secrets_store.get_secret_value("s", version_id=v1)
    assert old.value.string == "one" and old.stages == ()
    stages = (await secrets_store.describe_secret("s")).version_stages
    assert stages == {v1: (), v2.version_id: (AWSPREVIOUS,), v3.version_id: (AWSCURRENT,)}
    with pytest.raises(ResourceNotFoundException, match="staging label: AWSPENDING"):
        await secrets_store.get_secret_value("s", version_stage="AWSPENDING")


async def test_pending_version_does_not_become_current(secrets_store: SecretStore) -> None:
    await secrets_store.create_secret("s", region=REGION, value=text("one"))
    pending = await secrets_store.put_secret_value("s", text("next"), stages=["AWSPENDING"])
    assert pending.stages == ("AWSPENDING",)
    assert (await secrets_store.get_secret_value("s")).value.string == "one"
    assert (
        await secrets_store.get_secret_value("s", version_stage="AWSPENDING")
    ).value.string == "next"


async def test_client_request_token_is_idempotent(secrets_store: SecretStore) -> None:
    await secrets_store.create_secret("s", region=REGION, value=text("one"))
    first = await secrets_store.put_secret_value("s", text("two"), client_request_token=TOKEN_A)
    again = await secrets_store.put_secret_value("s", text("two"), client_request_token=TOKEN_A)
    assert again.version_id == first.version_id == TOKEN_A
    with pytest.raises(ResourceExistsException):
        await secrets_store.put_secret_value("s", text("other"), client_request_token=TOKEN_A)


def test_move_stages() -> None:
    assert move_stages({"1": [AWSCURRENT], "0": [AWSPREVIOUS]}, "2", [AWSCURRENT]) == {
        "0": (),
        "1": (AWSPREVIOUS,),
        "2": (AWSCURRENT,),
    }
    assert move_stages({"1": [AWSCURRENT, "x"]}, "2", ["x"]) == {"1": (AWSCURRENT,), "2": ("x",)}
    assert move_stages({}, "1", [AWSCURRENT]) == {"1": (AWSCURRENT,)}


async def test_deletion_window_and_restore(secrets_store: SecretStore, clock: FakeClock) -> None:
    await secrets_store.create_secret("s", region=REGION, value=text("v"))
    _, when = await secrets_store.delete_secret("s", recovery_window_days=7)
    assert when.timestamp() == clock.now + 7 * 86_400
    for call in (
        secrets_store.get_secret_value("s"),
        secrets_store.put_secret_value("s", text("w")),
        secrets_store.update_secret("s", description="d"),
        secrets_store.delete_secret("s"),
    ):
        with pytest.raises(InvalidRequestException, match="marked for deletion"):
            await call
    assert (await secrets_store.describe_secret("s")).deleted is not None
    with pytest.raises(InvalidRequestException, match="already scheduled for deletion"):
        await secrets_store.create_secret("s", region=REGION, value=text("new"))
    assert await secrets_store.list_secrets() == ([], None)
    listed, _ = await secrets_store.list_secrets(include_planned_deletion=True)
    assert [s.name for s in listed] == ["s"]
    restored = await secrets_store.restore_secret("s")
    assert restored.deleted is None
    assert (await secrets_store.get_secret_value("s")).value.string == "v"
    assert MARKED_FOR_DELETION.endswith("marked for deletion.")


async def test_window_end_deletes_and_frees_the_name(
    secrets_store: SecretStore, clock: FakeClock
) -> None:
    secret, _ = await secrets_store.create_secret("s", region=REGION, value=text("v"))
    await secrets_store.delete_secret("s")  # 30 days by default
    clock.advance_days(29.9)
    assert (await secrets_store.describe_secret("s")).arn == secret.arn
    clock.advance_days(0.2)
    with pytest.raises(ResourceNotFoundException):
        await secrets_store.describe_secret("s")
    again, _ = await secrets_store.create_secret("s", region=REGION, value=text("w"))
    assert again.arn != secret.arn  # a new random suffix


async def test_force_delete_and_window_limits(secrets_store: SecretStore) -> None:
    await secrets_store.create_secret("s", region=REGION, value=text("v"))
    with pytest.raises(InvalidParameterException):
        await secrets_store.delete_secret("s", recovery_window_days=6)
    with pytest.raises(InvalidParameterException):
        await secrets_store.delete_secret("s", recovery_window_days=7, force=True)
    await secrets_store.delete_secret("s", force=True)
    with pytest.raises(ResourceNotFoundException):
        await secrets_store.describe_secret("s")
    await secrets_store.create_secret("s", region=REGION, value=text("again"))


async def test_purge_expired(secrets_store: SecretStore, clock: FakeClock) -> None:
    await secrets_store.create_secret("a", region=REGION, value=text("v"))
    await secrets_store.create_secret("b", region=REGION, value=text("v"))
    await secrets_store.delete_secret("a", recovery_window_days=7)
    clock.advance_days(8)
    assert await secrets_store.purge_expired() == 1
    listed, _ = await secrets_store.list_secrets(include_planned_deletion=True)
    assert [s.name for s in listed] == ["b"]


async def test_update_secret(secrets_store: SecretStore) -> None:
    await secrets_store.create_secret("s", region=REGION, value=text("v1"))
    secret, version = await secrets_store.update_secret("s", description="new")
    assert secret.description == "new" and version is None
    _, version = await secrets_store.update_secret("s", value=text("v2"))
    assert version is not None
    assert (await secrets_store.get_secret_value("s")).value.string == "v2"


def names(page: list[Secret]) -> list[str]:
    return [s.name for s in page]


async def test_list_filters_and_paging(secrets_store: SecretStore, clock: FakeClock) -> None:
    for i, name in enumerate(["prod/db", "prod/api", "dev/db"]):
        clock.now += 1
        await secrets_store.create_secret(
            name,
            region=REGION,
            value=text("v"),
            tags=[("env", name.split("/")[0])],
            description=f"n{i}",
        )
    page, _ = await secrets_store.list_secrets(filters=[ListFilter("name", ("PROD/",))])
    assert names(page) == ["prod/db", "prod/api"]
    page, _ = await secrets_store.list_secrets(filters=[ListFilter("tag-value", ("!prod",))])
    assert names(page) == ["dev/db"]
    page, token = await secrets_store.list_secrets(max_results=2, sort_order="desc")
    assert names(page) == ["dev/db", "prod/api"] and token is not None
    page, token = await secrets_store.list_secrets(
        max_results=2, sort_order="desc", next_token=token
    )
    assert names(page) == ["prod/db"] and token is None


async def test_customer_key_encrypts_and_its_state_matters(
    secrets_store: SecretStore, keys: KeyStore
) -> None:
    key = await keys.create_key(region=REGION)
    await secrets_store.create_secret("s", region=REGION, value=text("v"), kms_key_id=key.arn)
    await keys.disable_key(key.key_id)
    with pytest.raises(DecryptionFailure, match="DisabledException"):
        await secrets_store.get_secret_value("s")
    with pytest.raises(EncryptionFailure):
        await secrets_store.put_secret_value("s", text("w"))
    with pytest.raises(EncryptionFailure):
        await secrets_store.create_secret(
            "t", region=REGION, value=text("v"), kms_key_id="alias/none"
        )
    await keys.enable_key(key.key_id)
    assert (await secrets_store.get_secret_value("s")).value.string == "v"


async def test_a_version_blob_moved_to_another_version_does_not_open(
    secrets_store: SecretStore,
) -> None:
    _, v1 = await secrets_store.create_secret("s", region=REGION, value=text("one"))
    v2 = await secrets_store.put_secret_value("s", text("two"))
    engine = secrets_store._engine
    async with engine.begin() as conn:
        blob = (
            (await conn.execute(sm_versions.select().where(sm_versions.c.version_id == v1)))
            .one()
            .sealed
        )
        await conn.execute(
            sm_versions.update()
            .where(sm_versions.c.version_id == v2.version_id)
            .values(sealed=blob)
        )
    with pytest.raises(DecryptionFailure):
        await secrets_store.get_secret_value("s")


async def test_values_never_reach_the_database_in_the_clear(
    secrets_store: SecretStore, db_path: Path
) -> None:
    await secrets_store.create_secret("s", region=REGION, value=text("correct-horse-battery"))
    await secrets_store.put_secret_value("s", SecretValue(binary=b"binary-staple-value"))
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob("lamina.db*"))
    assert b"correct-horse-battery" not in raw and b"binary-staple-value" not in raw
    assert b"s" in raw  # the name is metadata, stored as is


async def test_concurrent_puts_leave_one_current_and_one_previous(
    secrets_store: SecretStore,
) -> None:
    await secrets_store.create_secret("s", region=REGION, value=text("v0"))
    puts = [secrets_store.put_secret_value("s", text(f"v{i}")) for i in range(1, 21)]
    versions = await asyncio.gather(*puts)
    stages = (await secrets_store.describe_secret("s")).version_stages
    labelled = sorted(label for labels in stages.values() for label in labels)
    assert labelled == [AWSCURRENT, AWSPREVIOUS]
    current = await secrets_store.get_secret_value("s")
    assert current.version_id in {v.version_id for v in versions}


async def test_update_that_cannot_encrypt_changes_nothing(
    secrets_store: SecretStore, keys: KeyStore
) -> None:
    await secrets_store.create_secret("s", region=REGION, value=text("v1"), description="old")
    key = await keys.create_key(region=REGION)
    await keys.disable_key(key.key_id)
    with pytest.raises(EncryptionFailure):
        await secrets_store.update_secret(
            "s", value=text("v2"), description="new", kms_key_id=key.arn
        )
    secret = await secrets_store.describe_secret("s")
    assert (secret.description, secret.kms_key_id) == ("old", None)
    assert (await secrets_store.get_secret_value("s")).value.string == "v1"
