"""Signing profiles as AWS Signer models them, each version with its own key pair.

A profile's lifecycle is a small state machine:

    Active ──revoke──> Revoked       signatures made from the effective time on are
       │                  ^          refused (RevokeSigningProfile)
       └──cancel──> Canceled ──┘     no new signatures; earlier ones stay valid, as
                                     in AWS (CancelSigningProfile); a leaked key of a
                                     canceled profile can still be revoked

PutSigningProfile on the name of an Active profile returns it unchanged; on a
Revoked one it starts a new version with a fresh key pair (key rotation); a Canceled
name is not reused, as in AWS.

Profiles are few and read on every signed deployment, so they are kept in memory
and written through to SQL.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, ClassVar, Protocol

from sqlalchemy import MetaData, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.errors import ResourceNotFound, ValidationError
from lamina.signing import keys
from lamina.signing.package_signature import DIGEST_BYTES, Envelope, Statement
from lamina.signing.tables import signing_metadata, signing_profiles

_NAME = re.compile(r"^[a-zA-Z0-9_]{2,64}$")
_DAYS = {"DAYS": 1, "MONTHS": 30, "YEARS": 365}
DEFAULT_VALIDITY = (135, "MONTHS")  # AWS Signer's default signature validity period
_DAY_S = 86_400


class Sealer(Protocol):
    """`lamina.secrets.Envelope`: seals the private keys at rest."""

    async def seal(self, plaintext: bytes, context: Mapping[str, str]) -> bytes: ...
    async def open(self, blob: bytes, context: Mapping[str, str]) -> bytes: ...


class ProfileStatus(Enum):
    ACTIVE = "Active"
    REVOKED = "Revoked"
    CANCELED = "Canceled"


_TRANSITIONS: dict[ProfileStatus, frozenset[ProfileStatus]] = {
    ProfileStatus.ACTIVE: frozenset({ProfileStatus.REVOKED, ProfileStatus.CANCELED}),
    # Revoking a canceled version refuses its old signatures, if its key leaked.
    ProfileStatus.CANCELED: frozenset({ProfileStatus.REVOKED}),
    # Revocation is final: the version's signatures must never become valid again.
    ProfileStatus.REVOKED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class SigningProfile:
    name: str
    version: str
    version_arn: str
    platform_id: str
    validity_value: int
    validity_type: str
    status: ProfileStatus
    status_reason: str
    created_at: float
    public_key: bytes
    revoked_at: float | None = None
    revocation_effective_from: float | None = None
    revoked_by: str | None = None
    tags: Mapping[str, str] | None = None

    @property
    def arn(self) -> str:
        return self.version_arn.rsplit("/", 1)[0]

    @property
    def validity_s(self) -> int:
        return self.validity_value * _DAYS[self.validity_type] * _DAY_S

    def revokes(self, signed_at: float) -> bool:
        """Does this version's revocation refuse a signature made at `signed_at`?"""
        effective = self.revocation_effective_from
        return (
            self.status is ProfileStatus.REVOKED
            and effective is not None
            and signed_at >= effective
        )


def _transition(profile: SigningProfile, to: ProfileStatus) -> None:
    if to not in _TRANSITIONS[profile.status]:
        raise ValidationError(
            f"Signing profile {profile.name} is {profile.status.value} and cannot become {to.value}."
        )


def _new_version() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


def _key_context(version_arn: str) -> dict[str, str]:
    return {"lamina:purpose": "signing-profile", "profileVersionArn": version_arn}


class ProfileStore:
    metadata: ClassVar[MetaData] = signing_metadata

    def __init__(
        self,
        engine: AsyncEngine,
        sealer: Sealer,
        region: str,
        account_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._sealer = sealer
        self._region = region
        self._account_id = account_id
        self._clock = clock
        self._versions: dict[str, SigningProfile] = {}  # by version ARN
        self._current: dict[str, str] = {}  # profile name -> its latest version ARN

    async def load(self) -> None:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(signing_profiles).order_by(signing_profiles.c.created_at))
            ).mappings()
            for row in rows:
                profile = _from_row(row)
                self._versions[profile.version_arn] = profile
                self._current[profile.name] = profile.version_arn

    def profile_arn(self, name: str) -> str:
        return f"arn:aws:signer:{self._region}:{self._account_id}:/signing-profiles/{name}"

    # -- reads ------------------------------------------------------------------------

    def get(self, name: str) -> SigningProfile:
        arn = self._current.get(name)
        if arn is None:
            raise ResourceNotFound(f"Signing profile {name} does not exist.")
        return self._versions[arn]

    def version(self, version_arn: str) -> SigningProfile | None:
        return self._versions.get(version_arn)

    def list(self) -> list[SigningProfile]:
        return [self._versions[arn] for _, arn in sorted(self._current.items())]

    # -- lifecycle --------------------------------------------------------------------

    async def put(
        self,
        name: str,
        platform_id: str,
        validity: tuple[int, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SigningProfile:
        if not _NAME.match(name):
            raise ValidationError(
                f"Profile name {name!r} is invalid: 2 to 64 letters, digits or underscores."
            )
        if platform_id != keys.PLATFORM_ID:
            raise ValidationError(
                f"Platform {platform_id!r} is not supported: lamina signs for {keys.PLATFORM_ID}."
            )
        value, kind = validity or DEFAULT_VALIDITY
        if kind not in _DAYS or not 1 <= value <= 10_000:
            raise ValidationError(
                "signatureValidityPeriod needs a positive value and a type of DAYS, MONTHS or YEARS."
            )
        existing = self._current.get(name)
        if existing is not None:
            current = self._versions[existing]
            if current.status is ProfileStatus.ACTIVE:
                return current
            if current.status is ProfileStatus.CANCELED:
                raise ValidationError(
                    f"Signing profile {name} was canceled; its name cannot be reused."
                )
        version = _new_version()
        version_arn = f"{self.profile_arn(name)}/{version}"
        private_der, public_der = keys.generate_key_pair()
        sealed = await self._sealer.seal(private_der, _key_context(version_arn))
        profile = SigningProfile(
            name=name, version=version, version_arn=version_arn, platform_id=platform_id,
            validity_value=value, validity_type=kind, status=ProfileStatus.ACTIVE,
            status_reason="", created_at=self._clock(), public_key=public_der, tags=dict(tags or {}),
        )  # fmt: skip
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(signing_profiles).values(
                    version_arn=version_arn, name=name, version=version, platform_id=platform_id,
                    validity_value=value, validity_type=kind, status=profile.status.value,
                    status_reason="", created_at=profile.created_at, public_key=public_der,
                    sealed_key=sealed, tags=json.dumps(dict(tags or {})),
                )
            )  # fmt: skip
        self._versions[version_arn] = profile
        self._current[name] = version_arn
        return profile

    async def revoke(
        self, name: str, version: str, reason: str, effective_from: float, revoked_by: str
    ) -> SigningProfile:
        profile = self.get(name)
        if profile.version != version:
            found = [p for p in self._versions.values() if p.name == name and p.version == version]
            if not found:
                raise ResourceNotFound(f"Signing profile {name} has no version {version}.")
            profile = found[0]
        _transition(profile, ProfileStatus.REVOKED)
        revoked = replace(
            profile, status=ProfileStatus.REVOKED, status_reason=reason, revoked_at=self._clock(),
            revocation_effective_from=effective_from, revoked_by=revoked_by,
        )  # fmt: skip
        await self._write_status(revoked)
        return revoked

    async def cancel(self, name: str) -> SigningProfile:
        profile = self.get(name)
        _transition(profile, ProfileStatus.CANCELED)
        canceled = replace(profile, status=ProfileStatus.CANCELED)
        await self._write_status(canceled)
        return canceled

    async def _write_status(self, profile: SigningProfile) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(signing_profiles)
                .where(signing_profiles.c.version_arn == profile.version_arn)
                .values(
                    status=profile.status.value, status_reason=profile.status_reason,
                    revoked_at=profile.revoked_at, revoked_by=profile.revoked_by,
                    revocation_effective_from=profile.revocation_effective_from,
                )
            )  # fmt: skip
        self._versions[profile.version_arn] = profile

    # -- signing ----------------------------------------------------------------------

    async def sign(self, name: str, code_digest: bytes) -> Envelope:
        """Sign a package's manifest digest with the profile's current version."""
        if len(code_digest) != DIGEST_BYTES:
            raise ValidationError(
                f"The payload must be the {DIGEST_BYTES}-byte SHA-384 digest of a package manifest "
                f"(`lamina sign` computes it), not {len(code_digest)} bytes."
            )
        profile = self.get(name)
        if profile.status is not ProfileStatus.ACTIVE:
            raise ValidationError(
                f"Signing profile {name} is {profile.status.value}: it cannot sign."
            )
        async with self._engine.connect() as conn:
            sealed = (
                await conn.execute(
                    select(signing_profiles.c.sealed_key).where(
                        signing_profiles.c.version_arn == profile.version_arn
                    )
                )
            ).scalar_one()
        private_der = await self._sealer.open(sealed, _key_context(profile.version_arn))
        now = int(self._clock())
        statement = Statement(
            code_digest=code_digest.hex(), profile_name=profile.name,
            profile_version=profile.version, profile_version_arn=profile.version_arn,
            platform_id=profile.platform_id, job_id=str(uuid.uuid4()),
            signed_at=now, expires_at=now + profile.validity_s,
        )  # fmt: skip
        raw = statement.encode()
        return Envelope(raw, keys.sign(private_der, raw))


def _from_row(row: Any) -> SigningProfile:
    return SigningProfile(
        name=row["name"], version=row["version"], version_arn=row["version_arn"],
        platform_id=row["platform_id"], validity_value=row["validity_value"],
        validity_type=row["validity_type"], status=ProfileStatus(row["status"]),
        status_reason=row["status_reason"], created_at=row["created_at"],
        public_key=row["public_key"], revoked_at=row["revoked_at"],
        revocation_effective_from=row["revocation_effective_from"],
        revoked_by=row["revoked_by"], tags=json.loads(row["tags"] or "{}"),
    )  # fmt: skip
