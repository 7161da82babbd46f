"""ProfileStore: durable profiles, keys sealed at rest, the lifecycle's transitions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.errors import ResourceNotFound, ValidationError
from lamina.secrets import Envelope, MasterKey
from lamina.signing import keys
from lamina.signing.package_signature import DIGEST_BYTES
from lamina.signing.profiles import ProfileStatus, ProfileStore
from lamina.storage.database import open_database, sqlite_url

DIGEST = bytes(range(DIGEST_BYTES))


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(sqlite_url(tmp_path / "lamina.db"), ProfileStore.metadata)
    yield engine
    await engine.dispose()


@pytest.fixture
def sealer() -> Envelope:
    return Envelope(MasterKey(bytes(range(32))))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(engine: AsyncEngine, sealer: Envelope, clock: Clock) -> ProfileStore:
    return ProfileStore(engine, sealer, "us-east-1", "000000000000", clock)


async def test_put_get_and_reload(
    store: ProfileStore, engine: AsyncEngine, sealer: Envelope
) -> None:
    profile = await store.put("prod_signer", keys.PLATFORM_ID, (2, "YEARS"), {"team": "a"})
    assert profile.arn == "arn:aws:signer:us-east-1:000000000000:/signing-profiles/prod_signer"
    assert profile.version_arn == f"{profile.arn}/{profile.version}"
    assert profile.status is ProfileStatus.ACTIVE and profile.validity_s == 2 * 365 * 86400
    assert await store.put("prod_signer", keys.PLATFORM_ID) == profile  # idempotent
    reloaded = ProfileStore(engine, sealer, "us-east-1", "000000000000")
    await reloaded.load()
    assert reloaded.get("prod_signer") == profile
    assert reloaded.version(profile.version_arn) == profile


async def test_the_private_key_is_sealed_at_rest(store: ProfileStore, tmp_path: Path) -> None:
    await store.put("prod", keys.PLATFORM_ID)
    envelope = await store.sign("prod", DIGEST)
    raw = (tmp_path / "lamina.db").read_bytes()
    assert b"PRIVATE" not in raw and b"\x30\x81\xb6\x02\x01\x00" not in raw  # no PKCS#8 DER
    assert envelope.statement.code_digest == DIGEST.hex()


async def test_signatures_verify_with_the_public_key(store: ProfileStore, clock: Clock) -> None:
    profile = await store.put("prod", keys.PLATFORM_ID, (10, "DAYS"))
    envelope = await store.sign("prod", DIGEST)
    assert keys.verify(profile.public_key, envelope.statement_bytes, envelope.signature)
    statement = envelope.statement
    assert statement.profile_version_arn == profile.version_arn
    assert statement.signed_at == int(clock.now)
    assert statement.expires_at == int(clock.now) + 10 * 86400


async def test_payload_must_be_a_manifest_digest(store: ProfileStore) -> None:
    await store.put("prod", keys.PLATFORM_ID)
    with pytest.raises(ValidationError, match="48-byte"):
        await store.sign("prod", b"the whole zip")


async def test_validation(store: ProfileStore) -> None:
    with pytest.raises(ValidationError):
        await store.put("x", keys.PLATFORM_ID)
    with pytest.raises(ValidationError):
        await store.put("bad-name!", keys.PLATFORM_ID)
    with pytest.raises(ValidationError):
        await store.put("prod", "AWSIoTDeviceManagement-SHA256-ECDSA")
    with pytest.raises(ValidationError):
        await store.put("prod", keys.PLATFORM_ID, (1, "WEEKS"))
    with pytest.raises(ResourceNotFound):
        store.get("missing")


async def test_revoke_then_put_rotates_to_a_new_version(store: ProfileStore) -> None:
    first = await store.put("prod", keys.PLATFORM_ID)
    revoked = await store.revoke("prod", first.version, "key leaked", 5.0, "arn:aws:iam::0:root")
    assert (
        revoked.status is ProfileStatus.REVOKED
        and revoked.revokes(5.0)
        and not revoked.revokes(4.0)
    )
    with pytest.raises(ValidationError, match="cannot sign"):
        await store.sign("prod", DIGEST)
    with pytest.raises(ValidationError):  # revocation is final
        await store.cancel("prod")
    second = await store.put("prod", keys.PLATFORM_ID)
    assert second.version != first.version and second.public_key != first.public_key
    assert store.version(first.version_arn) == revoked  # old signatures still judged
    with pytest.raises(ResourceNotFound):
        await store.revoke("prod", "nope", "r", 0.0, "x")


async def test_cancel_stops_signing_and_the_name_is_not_reused(store: ProfileStore) -> None:
    profile = await store.put("prod", keys.PLATFORM_ID)
    await store.cancel("prod")
    with pytest.raises(ValidationError, match="cannot sign"):
        await store.sign("prod", DIGEST)
    with pytest.raises(ValidationError, match="cannot be reused"):
        await store.put("prod", keys.PLATFORM_ID)
    revoked = await store.revoke("prod", profile.version, "leaked", 0.0, "x")  # still allowed
    assert revoked.status is ProfileStatus.REVOKED
