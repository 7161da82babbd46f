"""Envelope encryption and its binary format: round trips, tampering, wrong context."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.errors import LaminaError
from lamina.secrets import Envelope, EnvironmentCipher, KeyStore, MasterKey, blob_format
from lamina.secrets.errors import InvalidCiphertextException, SealedDataCorrupt

CONTEXT = {"LambdaFunctionName": "f", "lamina:purpose": "environment"}


async def test_round_trip_with_the_master_key(master: MasterKey) -> None:
    envelope = Envelope(master)
    blob = await envelope.seal(b"hello", CONTEXT)
    assert blob.startswith(b"LMNE\x01")
    assert b"hello" not in blob
    assert await envelope.open(blob, CONTEXT) == b"hello"
    assert Envelope.wrapping_key(blob) is None


async def test_each_seal_uses_a_fresh_data_key_and_nonce(master: MasterKey) -> None:
    envelope = Envelope(master)
    assert await envelope.seal(b"same", CONTEXT) != await envelope.seal(b"same", CONTEXT)


async def test_every_flipped_byte_fails_to_open(master: MasterKey) -> None:
    envelope = Envelope(master)
    blob = await envelope.seal(b"value", CONTEXT)
    for i in range(len(blob)):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises((InvalidCiphertextException, SealedDataCorrupt)):
            await envelope.open(bytes(tampered), CONTEXT)


async def test_truncation_fails_to_open(master: MasterKey) -> None:
    envelope = Envelope(master)
    blob = await envelope.seal(b"value", CONTEXT)
    for end in range(len(blob)):
        with pytest.raises((InvalidCiphertextException, SealedDataCorrupt)):
            await envelope.open(blob[:end], CONTEXT)


@pytest.mark.parametrize(
    "other",
    [
        {"LambdaFunctionName": "g", "lamina:purpose": "environment"},
        {"LambdaFunctionName": "f"},
        {**CONTEXT, "extra": ""},
        {},
    ],
)
async def test_another_context_fails_to_open(master: MasterKey, other: dict[str, str]) -> None:
    envelope = Envelope(master)
    blob = await envelope.seal(b"value", CONTEXT)
    with pytest.raises(InvalidCiphertextException):
        await envelope.open(blob, other)


async def test_another_master_key_is_named_in_the_error(master: MasterKey) -> None:
    blob = await Envelope(master).seal(b"value", CONTEXT)
    with pytest.raises(SealedDataCorrupt, match="master key"):
        await Envelope(MasterKey(b"\xff" * 32)).open(blob, CONTEXT)


async def test_kms_wrapped_round_trip_and_disabled_key(
    master: MasterKey, keys: KeyStore, envelope: Envelope
) -> None:
    key = await keys.create_key(region="us-east-1")
    blob = await envelope.seal(b"value", CONTEXT, key.arn)
    assert Envelope.wrapping_key(blob) == key.arn
    assert await envelope.open(blob, CONTEXT) == b"value"
    with pytest.raises(InvalidCiphertextException):
        await envelope.open(blob, {"LambdaFunctionName": "g"})
    # The master key alone cannot open a blob wrapped by a customer key.
    with pytest.raises(SealedDataCorrupt):
        await Envelope(master).open(blob, CONTEXT)


def test_context_encoding_is_unambiguous() -> None:
    # Naive concatenation would make these equal.
    assert blob_format.encode_context({"ab": "c"}) != blob_format.encode_context({"a": "bc"})
    assert blob_format.encode_context({"a": "1", "b": "2"}) == blob_format.encode_context(
        {"b": "2", "a": "1"}
    )


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=8))
async def test_environment_round_trip(variables: dict[str, str]) -> None:
    cipher = EnvironmentCipher(Envelope(MasterKey(b"\x07" * 32)))
    blob = await cipher.seal("fn", variables)
    assert await cipher.open("fn", blob) == variables


async def test_environment_blob_does_not_open_as_another_function(master: MasterKey) -> None:
    cipher = EnvironmentCipher(Envelope(master))
    blob = await cipher.seal("billing", {"DB_PASSWORD": "hunter2"})
    assert b"hunter2" not in blob
    with pytest.raises(SealedDataCorrupt) as info:
        await cipher.open("reports", blob)
    assert "hunter2" not in str(info.value)


async def test_environment_with_a_customer_key(keys: KeyStore, envelope: Envelope) -> None:
    cipher = EnvironmentCipher(envelope)
    key = await keys.create_key(region="us-east-1")
    blob = await cipher.seal("fn", {"A": "1"}, key.arn)
    assert cipher.kms_key_arn(blob) == key.arn
    await keys.disable_key(key.key_id)
    with pytest.raises(LaminaError) as info:
        await cipher.open("fn", blob)
    assert getattr(info.value, "code", None) == "KMSDisabledException"
    assert getattr(info.value, "status", None) == 502
    with pytest.raises(LaminaError) as info:
        await cipher.seal("fn", {"A": "1"}, key.arn)
    assert getattr(info.value, "code", None) == "InvalidParameterValueException"
