"""Verify a package against a code-signing config: Lambda's four checks.

    integrity   the signature is valid and the package is the one signed
    mismatch    the signing profile version is one the config allows
    revocation  the version was not revoked as of the signing time
    expiry      the signature's validity period has not ended

Lambda refuses a failed integrity check whatever the policy says
(InvalidCodeSignatureException); the other checks, and an unsigned package, refuse
only under `Enforce` (CodeVerificationFailedException) and warn under `Warn`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum

from lamina.signing import keys
from lamina.signing.package_signature import MalformedSignature, read_package
from lamina.signing.profiles import SigningProfile


class Finding(Enum):
    VALID = "valid"
    UNSIGNED = "unsigned"
    INTEGRITY = "integrity"  # tampered, or the signature does not verify
    MISMATCH = "mismatch"  # signed by a profile version the config does not allow
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Verdict:
    finding: Finding
    reason: str
    profile_version_arn: str = ""
    job_id: str = ""


def verify_package(
    data: bytes,
    versions: Callable[[str], SigningProfile | None],
    allowed: Collection[str],
    now: float,
) -> Verdict:
    """The verdict on `data`; `versions` finds a profile version by ARN."""
    try:
        contents = read_package(data)
        envelope = contents.envelope
        if envelope is None:
            return Verdict(Finding.UNSIGNED, "The code package is not signed.")
        statement = envelope.statement
    except MalformedSignature as exc:
        return Verdict(Finding.INTEGRITY, str(exc))
    arn = statement.profile_version_arn
    profile = versions(arn)
    if profile is None:
        # Without the key the signature cannot be checked; a profile lamina does not
        # know is no allowed publisher either.
        return Verdict(
            Finding.MISMATCH,
            f"The code was signed by an unknown signing profile version {arn}.",
            arn,
        )
    if not keys.verify(profile.public_key, envelope.statement_bytes, envelope.signature):
        return Verdict(
            Finding.INTEGRITY, f"The signature does not verify with the public key of {arn}.", arn
        )
    if statement.code_digest != contents.digest.hex():
        return Verdict(
            Finding.INTEGRITY,
            "The code package was modified after it was signed: its contents do not match the signed digest.",
            arn,
        )
    job = statement.job_id
    if arn not in allowed:
        return Verdict(
            Finding.MISMATCH,
            f"The signing profile version {arn} is not an allowed publisher.",
            arn,
            job,
        )
    if profile.revokes(statement.signed_at):
        return Verdict(Finding.REVOKED, f"The signing profile version {arn} was revoked.", arn, job)
    if now > statement.expires_at:
        return Verdict(Finding.EXPIRED, "The code signature has expired.", arn, job)
    return Verdict(Finding.VALID, "", arn, job)
