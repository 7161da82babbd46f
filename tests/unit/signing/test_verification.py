"""Lambda's four checks on a signed package, with real ECDSA P-384 signatures."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace

import pytest
from tests.unit.signing.test_package_signature import FILES, make_zip

from lamina.signing import keys
from lamina.signing.package_signature import Envelope, Statement, embed, read_package
from lamina.signing.profiles import ProfileStatus, SigningProfile
from lamina.signing.verification import Finding, verify_package

ARN = "arn:aws:signer:us-east-1:000000000000:/signing-profiles/prod/v1"
OTHER = "arn:aws:signer:us-east-1:000000000000:/signing-profiles/other/v1"
NOW = 1_000_000.0


def profile(arn: str, public: bytes, **changes: object) -> SigningProfile:
    base = SigningProfile(
        name=arn.split("/")[-2], version="v1", version_arn=arn,
        platform_id=keys.PLATFORM_ID, validity_value=1, validity_type="DAYS",
        status=ProfileStatus.ACTIVE, status_reason="", created_at=0.0, public_key=public,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


class Signed:
    def __init__(self) -> None:
        self.private, self.public = keys.generate_key_pair()
        self.profiles = {ARN: profile(ARN, self.public)}

    def sign(
        self,
        data: bytes,
        arn: str = ARN,
        signed_at: int = int(NOW),
        expires: int = int(NOW) + 86400,
    ) -> bytes:
        statement = Statement(
            code_digest=read_package(data).digest.hex(), profile_name="prod",
            profile_version="v1", profile_version_arn=arn, platform_id=keys.PLATFORM_ID,
            job_id="job-1", signed_at=signed_at, expires_at=expires,
        )  # fmt: skip
        raw = statement.encode()
        return embed(data, Envelope(raw, keys.sign(self.private, raw)))

    def verify(self, data: bytes, allowed: tuple[str, ...] = (ARN,), now: float = NOW) -> Finding:
        return verify_package(data, self.profiles.get, allowed, now).finding


@pytest.fixture
def signer() -> Signed:
    return Signed()


def tamper(signed: bytes, name: str = "app.py") -> bytes:
    """Rewrite `name` with one byte changed, keeping every other entry as it is."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(signed)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == name:
                content = bytes([content[0] ^ 1]) + content[1:]
            target.writestr(info, content)
    return out.getvalue()


def test_a_correctly_signed_package_is_valid(signer: Signed) -> None:
    verdict = verify_package(signer.sign(make_zip(FILES)), signer.profiles.get, (ARN,), NOW)
    assert verdict.finding is Finding.VALID
    assert verdict.profile_version_arn == ARN and verdict.job_id == "job-1"


def test_unsigned(signer: Signed) -> None:
    assert signer.verify(make_zip(FILES)) is Finding.UNSIGNED


def test_one_byte_changed_fails_integrity(signer: Signed) -> None:
    assert signer.verify(tamper(signer.sign(make_zip(FILES)))) is Finding.INTEGRITY


def test_an_added_file_fails_integrity(signer: Signed) -> None:
    signed = io.BytesIO(signer.sign(make_zip(FILES)))
    with zipfile.ZipFile(signed, "a") as archive:
        archive.writestr("sitecustomize.py", b"import os\n")
    assert signer.verify(signed.getvalue()) is Finding.INTEGRITY


def test_a_statement_edited_after_signing_fails_integrity(signer: Signed) -> None:
    data = make_zip(FILES)
    envelope = read_package(signer.sign(data)).envelope
    assert envelope is not None
    later = envelope.statement_bytes.replace(b'"expiresAt":', b'"expiresAt":9')
    assert signer.verify(embed(data, Envelope(later, envelope.signature))) is Finding.INTEGRITY


def test_a_signature_by_another_key_fails_integrity(signer: Signed) -> None:
    forger = Signed()  # claims the same profile version ARN with its own key
    assert signer.verify(forger.sign(make_zip(FILES))) is Finding.INTEGRITY


def test_a_profile_not_allowed_is_a_mismatch(signer: Signed) -> None:
    signed = signer.sign(make_zip(FILES))
    assert signer.verify(signed, allowed=(OTHER,)) is Finding.MISMATCH


def test_an_unknown_profile_is_a_mismatch(signer: Signed) -> None:
    assert (
        signer.verify(signer.sign(make_zip(FILES), arn=OTHER), allowed=(OTHER,)) is Finding.MISMATCH
    )


def test_revocation_refuses_signatures_from_its_effective_time(signer: Signed) -> None:
    signed = signer.sign(make_zip(FILES), signed_at=int(NOW))
    revoked = dict(status=ProfileStatus.REVOKED, revoked_at=NOW, revocation_effective_from=NOW - 10)
    signer.profiles[ARN] = profile(ARN, signer.public, **revoked)
    assert signer.verify(signed) is Finding.REVOKED
    later = {**revoked, "revocation_effective_from": NOW + 10}
    signer.profiles[ARN] = profile(ARN, signer.public, **later)
    assert signer.verify(signed) is Finding.VALID  # signed before the revocation took effect


def test_a_canceled_profile_keeps_its_signatures_valid(signer: Signed) -> None:
    signed = signer.sign(make_zip(FILES))
    signer.profiles[ARN] = profile(ARN, signer.public, status=ProfileStatus.CANCELED)
    assert signer.verify(signed) is Finding.VALID


def test_expired(signer: Signed) -> None:
    signed = signer.sign(make_zip(FILES), expires=int(NOW) + 5)
    assert signer.verify(signed, now=NOW + 6) is Finding.EXPIRED


def test_a_garbled_envelope_fails_integrity(signer: Signed) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", FILES["app.py"])
        archive.writestr(".lamina-signature.json", b"{not json")
    assert signer.verify(buffer.getvalue()) is Finding.INTEGRITY
