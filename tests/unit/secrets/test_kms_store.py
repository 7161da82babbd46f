"""KeyStore: key lifecycle, aliases, Encrypt/Decrypt with context, data keys, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.secrets.support import FakeClock

from lamina.secrets import KeyStore, MasterKey
from lamina.secrets.errors import (
    AlreadyExistsException,
    DisabledException,
    IncorrectKeyException,
    InvalidCiphertextException,
    KMSInvalidStateException,
    KmsValidationException,
    NotFoundException,
    SealedDataCorrupt,
)
from lamina.secrets.kms_model import KeyState

REGION = "us-east-1"


async def test_create_describe_list(keys: KeyStore) -> None:
    key = await keys.create_key(region=REGION, description="orders", tags={"team": "a"})
    assert key.arn == f"arn:aws:kms:{REGION}:000000000000:key/{key.key_id}"
    assert key.state is KeyState.ENABLED and key.description == "orders"
    assert await keys.describe_key(key.arn) == key
    assert [k.key_id for k in await keys.list_keys()] == [key.key_id]
    with pytest.raises(NotFoundException):
        await keys.describe_key("00000000-0000-0000-0000-000000000000")


async def test_encrypt_decrypt_binds_the_context(keys: KeyStore) -> None:
    key = await keys.create_key(region=REGION)
    blob, used = await keys.encrypt(key.key_id, b"secret", {"purpose": "test"})
    assert used.key_id == key.key_id and b"secret" not in blob
    assert key.key_id.encode() in blob  # the blob names its key, like AWS's
    decrypted = await keys.decrypt(blob, {"purpose": "test"})
    assert decrypted.plaintext == b"secret" and decrypted.key.key_id == key.key_id
    assert "secret" not in repr(decrypted)
    for wrong in ({"purpose": "other"}, {}, {"purpose": "test", "x": "y"}):
        with pytest.raises(InvalidCiphertextException):
            await keys.decrypt(blob, wrong)


async def test_tampered_and_foreign_ciphertexts(keys: KeyStore) -> None:
    key = await keys.create_key(region=REGION)
    blob, _ = await keys.encrypt(key.key_id, b"secret")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(InvalidCiphertextException):
        await keys.decrypt(tampered)
    with pytest.raises(InvalidCiphertextException):
        await keys.decrypt(b"not a ciphertext at all")


async def test_decrypt_with_the_wrong_key_id(keys: KeyStore) -> None:
    one = await keys.create_key(region=REGION)
    two = await keys.create_key(region=REGION)
    blob, _ = await keys.encrypt(one.key_id, b"x")
    with pytest.raises(IncorrectKeyException):
        await keys.decrypt(blob, key_ref=two.key_id)
    assert (await keys.decrypt(blob, key_ref=one.arn)).plaintext == b"x"


async def test_disabled_key_refuses_and_enabled_again_works(keys: KeyStore) -> None:
    key = await keys.create_key(region=REGION)
    blob, _ = await keys.encrypt(key.key_id, b"x")
    await keys.disable_key(key.key_id)
    with pytest.raises(DisabledException):
        await keys.encrypt(key.key_id, b"x")
    with pytest.raises(DisabledException):
        await keys.decrypt(blob)
    await keys.enable_key(key.key_id)
    assert (await keys.decrypt(blob)).plaintext == b"x"


async def test_aliases(keys: KeyStore) -> None:
    key = await keys.create_key(region=REGION)
    alias = await keys.create_alias("alias/orders", key.key_id)
    assert alias.arn == f"arn:aws:kms:{REGION}:000000000000:alias/orders"
    _, used = await keys.encrypt("alias/orders", b"x")
    assert used.key_id == key.key_id
    assert (await keys.describe_key(alias.arn)).key_id == key.key_id
    with pytest.raises(AlreadyExistsException):
        await keys.create_alias("alias/orders", key.key_id)
    with pytest.raises(KmsValidationException):
        await keys.create_alias("orders", key.key_id)
    assert [a.name for a in await keys.list_aliases(key.arn)] == ["alias/orders"]
    await keys.delete_alias("alias/orders")
    with pytest.raises(NotFoundException):
        await keys.encrypt("alias/orders", b"x")


async def test_deletion_window_with_a_fake_clock(keys: KeyStore, clock: FakeClock) -> None:
    key = await keys.create_key(region=REGION)
    await keys.create_alias("alias/gone", key.key_id)
    blob, _ = await keys.encrypt(key.key_id, b"x")
    with pytest.raises(KmsValidationException):
        await keys.schedule_key_deletion(key.key_id, 6)
    pending = await keys.schedule_key_deletion(key.key_id, 7)
    assert pending.state is KeyState.PENDING_DELETION and pending.pending_window_days == 7
    assert pending.deletion_date is not None
    with pytest.raises(KMSInvalidStateException):
        await keys.decrypt(blob)
    with pytest.raises(KMSInvalidStateException):
        await keys.enable_key(key.key_id)
    rescued = await keys.cancel_key_deletion(key.key_id)
    assert rescued.state is KeyState.DISABLED and rescued.deletion_date is None
    await keys.schedule_key_deletion(key.key_id, 7)
    clock.advance_days(6.9)
    assert (await keys.describe_key(key.key_id)).state is KeyState.PENDING_DELETION
    clock.advance_days(0.2)
    with pytest.raises(NotFoundException):
        await keys.describe_key(key.key_id)
    assert await keys.list_aliases() == []
    assert await keys.list_keys() == []


async def test_purge_expired(keys: KeyStore, clock: FakeClock) -> None:
    key = await keys.create_key(region=REGION)
    await keys.create_key(region=REGION)
    await keys.schedule_key_deletion(key.key_id, None)  # default 30 days
    clock.advance_days(31)
    assert await keys.purge_expired() == 1
    assert len(await keys.list_keys()) == 1


async def test_data_keys(keys: KeyStore) -> None:
    key = await keys.create_key(region=REGION)
    data_key = await keys.generate_data_key(key.key_id, {"a": "b"}, key_spec="AES_256")
    assert len(data_key.plaintext) == 32
    assert "redacted" in repr(data_key)
    assert (await keys.decrypt(data_key.ciphertext, {"a": "b"})).plaintext == data_key.plaintext
    assert len((await keys.generate_data_key(key.key_id, number_of_bytes=64)).plaintext) == 64
    with pytest.raises(KmsValidationException):
        await keys.generate_data_key(key.key_id)
    with pytest.raises(KmsValidationException):
        await keys.generate_data_key(key.key_id, number_of_bytes=16, key_spec="AES_128")


async def test_re_encrypt(keys: KeyStore) -> None:
    one = await keys.create_key(region=REGION)
    two = await keys.create_key(region=REGION)
    blob, _ = await keys.encrypt(one.key_id, b"x", {"c": "1"})
    moved, source, destination = await keys.re_encrypt(
        blob, two.arn, source_context={"c": "1"}, destination_context={"c": "2"}
    )
    assert (source.key_id, destination.key_id) == (one.key_id, two.key_id)
    assert (await keys.decrypt(moved, {"c": "2"})).plaintext == b"x"


async def test_keys_survive_a_restart_but_not_another_master_key(
    keys: KeyStore, db_path: Path, master: MasterKey, clock: FakeClock
) -> None:
    from lamina.storage.database import open_database, sqlite_url

    key = await keys.create_key(region=REGION)
    blob, _ = await keys.encrypt(key.key_id, b"persisted")
    engine = await open_database(sqlite_url(db_path), KeyStore.metadata)
    try:
        again = KeyStore(engine, master, "000000000000", clock)
        assert (await again.decrypt(blob)).plaintext == b"persisted"
        stranger = KeyStore(engine, MasterKey(b"\x09" * 32), "000000000000", clock)
        with pytest.raises(SealedDataCorrupt, match="master key"):
            await stranger.decrypt(blob)
    finally:
        await engine.dispose()


async def test_key_material_never_reaches_the_database_in_the_clear(
    keys: KeyStore, db_path: Path
) -> None:
    key = await keys.create_key(region=REGION)
    material = await keys._material(key.key_id, 1)  # the store's own cache of it
    data_key = await keys.generate_data_key(key.key_id, key_spec="AES_256")
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob("lamina.db*"))
    assert material not in raw
    assert data_key.plaintext not in raw
