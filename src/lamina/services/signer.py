"""AWS Signer API subset (botocore model `signer`, rest-json) over the profile store.

    PutSigningProfile, GetSigningProfile, ListSigningProfiles,
    RevokeSigningProfile, CancelSigningProfile      profiles and their lifecycle
    SignPayload                                     what `lamina sign` calls

lamina generates each profile version's key pair itself (an ECDSA P-384 key, sealed
at rest), so `signingMaterial` (an ACM certificate in AWS) is ignored. SignPayload
signs the SHA-384 digest of a package manifest (payloadFormat
`application/vnd.lamina.code-manifest-sha384`) and returns the envelope to embed in
the zip: the package itself never travels to the server to be signed.

Each call is authorised as `signer:<Operation>` on the profile's ARN (root skips it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from lamina.errors import ValidationError
from lamina.protocols.context import RequestContext
from lamina.services.operations import OperationTable, Params
from lamina.signing import keys
from lamina.signing.package_signature import PAYLOAD_FORMAT
from lamina.signing.profiles import ProfileStatus, ProfileStore, SigningProfile

# (ctx, action, resource ARN) -> None, or raises AccessDenied
Access = Callable[[RequestContext, str, str], Awaitable[None]]


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _profile_out(profile: SigningProfile) -> Params:
    return {
        "profileName": profile.name,
        "profileVersion": profile.version,
        "profileVersionArn": profile.version_arn,
        "platformId": profile.platform_id,
        "platformDisplayName": keys.PLATFORM_DISPLAY_NAME,
        "signatureValidityPeriod": {"value": profile.validity_value, "type": profile.validity_type},
        "status": profile.status.value,
        "arn": profile.arn,
        "tags": dict(profile.tags or {}),
    }


class SignerService:
    def __init__(
        self,
        profiles: ProfileStore,
        access: Access,
        principal_arn: Callable[[RequestContext], str],
    ) -> None:
        self._profiles = profiles
        self._access = access
        self._principal_arn = principal_arn
        self._table = OperationTable(
            "Signer",
            {
                "PutSigningProfile": self.put_profile,
                "GetSigningProfile": self.get_profile,
                "ListSigningProfiles": self.list_profiles,
                "RevokeSigningProfile": self.revoke_profile,
                "CancelSigningProfile": self.cancel_profile,
                "SignPayload": self.sign_payload,
            },
        )

    async def __call__(self, operation: str, params: Params, ctx: RequestContext) -> Params:
        name = params.get("profileName")
        resource = self._profiles.profile_arn(name) if isinstance(name, str) and name else "*"
        await self._access(ctx, f"signer:{operation}", resource)
        return await self._table(operation, params, ctx)

    async def put_profile(self, p: Params, ctx: RequestContext) -> Params:
        period = p.get("signatureValidityPeriod")
        validity = (int(period["value"]), str(period["type"])) if period else None
        profile = await self._profiles.put(
            p["profileName"], p["platformId"], validity, p.get("tags")
        )
        return {
            "arn": profile.arn,
            "profileVersion": profile.version,
            "profileVersionArn": profile.version_arn,
        }

    async def get_profile(self, p: Params, ctx: RequestContext) -> Params:
        profile = self._profiles.get(p["profileName"])
        out = _profile_out(profile)
        if profile.status_reason:
            out["statusReason"] = profile.status_reason
        if profile.revoked_at is not None and profile.revocation_effective_from is not None:
            out["revocationRecord"] = {
                "revocationEffectiveFrom": _time(profile.revocation_effective_from),
                "revokedAt": _time(profile.revoked_at),
                "revokedBy": profile.revoked_by or "",
            }
        return out

    async def list_profiles(self, p: Params, ctx: RequestContext) -> Params:
        statuses = set(p.get("statuses") or [])
        include_canceled = bool(p.get("includeCanceled"))
        profiles = [
            _profile_out(profile)
            for profile in self._profiles.list()
            if (include_canceled or profile.status is not ProfileStatus.CANCELED)
            and (not statuses or profile.status.value in statuses)
            and (not p.get("platformId") or profile.platform_id == p["platformId"])
        ]
        return {"profiles": profiles}

    async def revoke_profile(self, p: Params, ctx: RequestContext) -> Params:
        effective = p["effectiveTime"]
        if not isinstance(effective, datetime):
            raise ValidationError("effectiveTime must be a timestamp.")
        await self._profiles.revoke(
            p["profileName"], p["profileVersion"], p["reason"], effective.timestamp(),
            self._principal_arn(ctx),
        )  # fmt: skip
        return {}

    async def cancel_profile(self, p: Params, ctx: RequestContext) -> Params:
        await self._profiles.cancel(p["profileName"])
        return {}

    async def sign_payload(self, p: Params, ctx: RequestContext) -> Params:
        if p["payloadFormat"] != PAYLOAD_FORMAT:
            raise ValidationError(
                f"payloadFormat {p['payloadFormat']!r} is not supported: lamina signs "
                f"{PAYLOAD_FORMAT} (use `lamina sign`)."
            )
        payload = p["payload"]
        envelope = await self._profiles.sign(p["profileName"], bytes(payload))
        statement = envelope.statement
        return {
            "jobId": statement.job_id,
            "jobOwner": ctx.account_id,
            "metadata": {
                "profileVersionArn": statement.profile_version_arn,
                "signedAt": str(statement.signed_at),
                "expiresAt": str(statement.expires_at),
            },
            "signature": envelope.encode(),
        }


def iam_access(
    principal_of: Callable[[RequestContext], Any],
    is_root: Callable[[Any], bool],
    checker: Any,
    conditions: Callable[[RequestContext], dict[str, object]],
) -> Access:
    """Signer calls are allowed by the caller's IAM policies; the root may do all."""

    async def access(ctx: RequestContext, action: str, resource_arn: str) -> None:
        principal = principal_of(ctx)
        if not is_root(principal):
            await checker.check(principal, action, resource_arn, conditions(ctx))

    return access
