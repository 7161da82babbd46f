"""The signed-package format: what the manifest digest binds, and the envelope entry."""

from __future__ import annotations

import io
import zipfile

import pytest

from lamina.signing.package_signature import (
    SIGNATURE_ENTRY,
    Envelope,
    MalformedSignature,
    Statement,
    embed,
    read_package,
)


def make_zip(files: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


FILES = {"app.py": b"def handler(e, c):\n    return 1\n", "lib/util.py": b"X = 1\n"}


def statement(digest: bytes = b"\0" * 48) -> Statement:
    return Statement(
        code_digest=digest.hex(), profile_name="p", profile_version="v1",
        profile_version_arn="arn:aws:signer:us-east-1:000000000000:/signing-profiles/p/v1",
        platform_id="AWSLambda-SHA384-ECDSA", job_id="job", signed_at=10, expires_at=20,
    )  # fmt: skip


def test_digest_ignores_compression_and_times_but_binds_contents() -> None:
    base = read_package(make_zip(FILES)).digest
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
        for name, content in FILES.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 5, 5, 5, 5, 5))
            info.external_attr = 0o100644 << 16
            archive.writestr(info, content)
    assert read_package(stored.getvalue()).digest == base
    one_byte = {**FILES, "app.py": FILES["app.py"].replace(b"1", b"2")}
    assert read_package(make_zip(one_byte)).digest != base


@pytest.mark.parametrize(
    "changed",
    [
        {**FILES, "extra.py": b""},  # an entry added
        {"app.py": FILES["app.py"]},  # an entry removed
        {"app2.py": FILES["app.py"], "lib/util.py": FILES["lib/util.py"]},  # renamed
        {"lib/util.py": FILES["lib/util.py"], "app.py": FILES["app.py"]},  # reordered
    ],
)
def test_digest_binds_the_entry_list(changed: dict[str, bytes]) -> None:
    assert read_package(make_zip(changed)).digest != read_package(make_zip(FILES)).digest


def test_digest_binds_modes() -> None:
    executable = make_zip(FILES, {"app.py": 0o755})
    assert read_package(executable).digest != read_package(make_zip(FILES)).digest


def test_duplicate_entries_change_the_digest() -> None:
    data = make_zip(FILES)
    buffer = io.BytesIO(data)
    with pytest.warns(UserWarning), zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("app.py", b"print('evil')\n")
    assert read_package(buffer.getvalue()).digest != read_package(data).digest


def test_embed_keeps_the_digest_and_round_trips_the_envelope() -> None:
    data = make_zip(FILES)
    digest = read_package(data).digest
    envelope = Envelope(statement(digest).encode(), b"signature-bytes")
    signed = embed(data, envelope)
    contents = read_package(signed)
    assert contents.digest == digest
    assert contents.envelope == envelope
    assert contents.envelope.statement == statement(digest)
    resigned = embed(signed, Envelope(b"{}", b"other"))  # replaces, never duplicates
    with zipfile.ZipFile(io.BytesIO(resigned)) as archive:
        assert [i.filename for i in archive.infolist()].count(SIGNATURE_ENTRY) == 1


def test_unsigned_package_has_no_envelope() -> None:
    assert read_package(make_zip(FILES)).envelope is None


def test_a_flipped_compressed_byte_is_malformed() -> None:
    data = bytearray(make_zip({"app.py": b"x" * 4000}))
    offset = data.index(b"app.py") + len(b"app.py") + 5  # inside the compressed data
    data[offset] ^= 0xFF
    with pytest.raises(MalformedSignature):
        read_package(bytes(data))


def test_two_signature_entries_are_malformed() -> None:
    data = embed(make_zip(FILES), Envelope(statement().encode(), b"s"))
    buffer = io.BytesIO(data)
    with pytest.warns(UserWarning), zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(SIGNATURE_ENTRY, Envelope(statement().encode(), b"t").encode())
    with pytest.raises(MalformedSignature):
        read_package(buffer.getvalue())


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"format": "other"}', b'{"format": "lamina-code-signature/1"}',
     b'{"format": "lamina-code-signature/1", "statement": "!!", "signature": ""}'],
)  # fmt: skip
def test_malformed_envelopes(raw: bytes) -> None:
    with pytest.raises(MalformedSignature):
        Envelope.decode(raw)


def test_malformed_statement() -> None:
    with pytest.raises(MalformedSignature):
        _ = Envelope(b'{"format": "lamina-code-statement/1"}', b"").statement
