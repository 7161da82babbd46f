"""KMS API (botocore model `kms`, json protocol) over the KeyStore.

Only symmetric encryption keys (SYMMETRIC_DEFAULT) exist; the key lifecycle, aliases
and the cryptography live in `lamina.secrets`. Here: member names in, KeyStore call,
member names out. Plaintext is never logged or put into an error message.

With an `AccessCheck` (the IAM layer's authorizer), each request is checked first as
`kms:<Operation>` on the ARN of the key it uses (Decrypt: the key its ciphertext
names; ReEncrypt: `kms:ReEncryptFrom` and `kms:ReEncryptTo`), or on "*" for
operations on no key (CreateKey, ListKeys, ListAliases, GenerateRandom).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from lamina.errors import LaminaError
from lamina.protocols.context import RequestContext
from lamina.secrets import blob_format
from lamina.secrets.blob_format import MalformedBlob
from lamina.secrets.errors import InvalidMarkerException, KmsValidationException, NotFoundException
from lamina.secrets.kms_model import (
    SYMMETRIC_DEFAULT,
    KmsAlias,
    KmsKey,
    alias_arn,
    check_context,
    key_arn,
)
from lamina.secrets.kms_store import KeyStore
from lamina.services.operations import OperationTable

T = TypeVar("T")

# Operations whose resource is the key a request member names.
_KEY_MEMBER = {
    "DescribeKey": "KeyId",
    "EnableKey": "KeyId",
    "DisableKey": "KeyId",
    "ScheduleKeyDeletion": "KeyId",
    "CancelKeyDeletion": "KeyId",
    "Encrypt": "KeyId",
    "GenerateDataKey": "KeyId",
    "GenerateDataKeyWithoutPlaintext": "KeyId",
    "CreateAlias": "TargetKeyId",
}

DEFAULT_PAGE = 100
MAX_PAGE = 1000


class AccessCheck(Protocol):
    """May the caller do `action` on `resource_arn`? Raises AccessDenied if not."""

    async def __call__(self, ctx: RequestContext, action: str, resource_arn: str) -> None: ...


def _required(params: dict[str, Any], member: str) -> Any:
    value = params.get(member)
    if value is None:
        raise KmsValidationException(f"1 validation error detected: {member} must not be null.")
    return value


def _check_algorithm(params: dict[str, Any], member: str = "EncryptionAlgorithm") -> None:
    algorithm = params.get(member)
    if algorithm is not None and algorithm != SYMMETRIC_DEFAULT:
        raise KmsValidationException(
            f"{member} {algorithm} is not supported by a SYMMETRIC_DEFAULT key."
        )


def _check_dry_run(params: dict[str, Any]) -> None:
    if params.get("DryRun"):
        raise LaminaError(
            "The request would have succeeded, but the DryRun option is set.",
            code="DryRunOperationException",
            status=412,
        )


def _page(items: Sequence[T], params: dict[str, Any]) -> tuple[Sequence[T], dict[str, Any]]:
    """KMS paging: Limit and an opaque Marker (here an offset); Truncated + NextMarker."""
    limit = params.get("Limit") or DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise KmsValidationException(f"Limit must be between 1 and {MAX_PAGE}.")
    marker = params.get("Marker")
    if marker is not None and not str(marker).isdigit():
        raise InvalidMarkerException("The Marker is not valid.")
    start = int(marker) if marker is not None else 0
    page = items[start : start + limit]
    more = start + limit < len(items)
    extra: dict[str, Any] = {"Truncated": more}
    if more:
        extra["NextMarker"] = str(start + limit)
    return page, extra


def key_metadata(key: KmsKey) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AWSAccountId": key.account_id,
        "KeyId": key.key_id,
        "Arn": key.arn,
        "CreationDate": key.created,
        "Enabled": key.state.value == "Enabled",
        "Description": key.description,
        "KeyUsage": key.key_usage,
        "KeyState": key.state.value,
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        "EncryptionAlgorithms": [SYMMETRIC_DEFAULT],
        "MultiRegion": False,
    }
    if key.deletion_date is not None:
        out["DeletionDate"] = key.deletion_date
        out["PendingDeletionWindowInDays"] = key.pending_window_days
    return out


def _alias_out(alias: KmsAlias) -> dict[str, Any]:
    return {
        "AliasName": alias.name,
        "AliasArn": alias.arn,
        "TargetKeyId": alias.key_id,
        "CreationDate": alias.created,
        "LastUpdatedDate": alias.created,
    }


class KmsService:
    """ServiceHandler for the `kms` signing name."""

    def __init__(self, keys: KeyStore, access: AccessCheck | None = None) -> None:
        self._keys = keys
        self._access = access
        self._table = OperationTable(
            "KMS",
            {
                "CreateKey": self.create_key,
                "DescribeKey": self.describe_key,
                "ListKeys": self.list_keys,
                "EnableKey": self.enable_key,
                "DisableKey": self.disable_key,
                "ScheduleKeyDeletion": self.schedule_key_deletion,
                "CancelKeyDeletion": self.cancel_key_deletion,
                "CreateAlias": self.create_alias,
                "DeleteAlias": self.delete_alias,
                "ListAliases": self.list_aliases,
                "Encrypt": self.encrypt,
                "Decrypt": self.decrypt,
                "ReEncrypt": self.re_encrypt,
                "GenerateDataKey": self.generate_data_key,
                "GenerateDataKeyWithoutPlaintext": self.generate_data_key_without_plaintext,
                "GenerateRandom": self.generate_random,
            },
        )

    async def __call__(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        if self._access is not None and operation in self._table:
            for action, resource in await self._resources(operation, params, ctx):
                await self._access(ctx, action, resource)
        return await self._table(operation, params, ctx)

    async def _resources(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> list[tuple[str, str]]:
        """(IAM action, resource ARN) pairs the request must be allowed."""
        if operation == "Decrypt":
            return [("kms:Decrypt", await self._ciphertext_key(params, ctx))]
        if operation == "ReEncrypt":
            destination = await self._key_arn(params.get("DestinationKeyId"), ctx)
            source = await self._ciphertext_key(params, ctx)
            return [("kms:ReEncryptFrom", source), ("kms:ReEncryptTo", destination)]
        if operation == "DeleteAlias":
            name = str(params.get("AliasName") or "")
            return [("kms:DeleteAlias", alias_arn(ctx.region, ctx.account_id, name))]
        member = _KEY_MEMBER.get(operation)
        if member is None:
            return [(f"kms:{operation}", "*")]
        return [(f"kms:{operation}", await self._key_arn(params.get(member), ctx))]

    async def _key_arn(self, key_ref: str | None, ctx: RequestContext) -> str:
        """The ARN of the key `key_ref` names; for an unknown key, the ARN it spells, so
        a caller without rights is refused before learning whether the key exists."""
        if not key_ref:
            return "*"
        try:
            return (await self._keys.describe_key(key_ref)).arn
        except (NotFoundException, KmsValidationException):
            if key_ref.startswith("arn:"):
                return key_ref
            if key_ref.startswith("alias/"):
                return alias_arn(ctx.region, ctx.account_id, key_ref)
            return key_arn(ctx.region, ctx.account_id, key_ref)

    async def _ciphertext_key(self, params: dict[str, Any], ctx: RequestContext) -> str:
        try:
            header, _, _ = blob_format.parse_kms(params.get("CiphertextBlob") or b"")
        except MalformedBlob:
            return "*"  # the operation itself reports InvalidCiphertextException
        return await self._key_arn(header.key_id, ctx)

    # -- keys -------------------------------------------------------------------------

    async def create_key(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        tags = {t["TagKey"]: t["TagValue"] for t in params.get("Tags") or []}
        key = await self._keys.create_key(
            region=ctx.region,
            description=params.get("Description") or "",
            key_usage=params.get("KeyUsage"),
            key_spec=params.get("KeySpec") or params.get("CustomerMasterKeySpec"),
            tags=tags,
        )
        return {"KeyMetadata": key_metadata(key)}

    async def describe_key(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        key = await self._keys.describe_key(_required(params, "KeyId"))
        return {"KeyMetadata": key_metadata(key)}

    async def list_keys(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        keys, extra = _page(await self._keys.list_keys(), params)
        return {"Keys": [{"KeyId": k.key_id, "KeyArn": k.arn} for k in keys], **extra}

    async def enable_key(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        await self._keys.enable_key(_required(params, "KeyId"))
        return {}

    async def disable_key(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        await self._keys.disable_key(_required(params, "KeyId"))
        return {}

    async def schedule_key_deletion(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        key = await self._keys.schedule_key_deletion(
            _required(params, "KeyId"), params.get("PendingWindowInDays")
        )
        return {
            "KeyId": key.arn,
            "DeletionDate": key.deletion_date,
            "KeyState": key.state.value,
            "PendingWindowInDays": key.pending_window_days,
        }

    async def cancel_key_deletion(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        key = await self._keys.cancel_key_deletion(_required(params, "KeyId"))
        return {"KeyId": key.arn}

    # -- aliases ----------------------------------------------------------------------

    async def create_alias(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        await self._keys.create_alias(
            _required(params, "AliasName"), _required(params, "TargetKeyId")
        )
        return {}

    async def delete_alias(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        await self._keys.delete_alias(_required(params, "AliasName"))
        return {}

    async def list_aliases(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        aliases, extra = _page(await self._keys.list_aliases(params.get("KeyId")), params)
        return {"Aliases": [_alias_out(a) for a in aliases], **extra}

    # -- cryptography -----------------------------------------------------------------

    async def encrypt(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        _check_algorithm(params)
        _check_dry_run(params)
        blob, key = await self._keys.encrypt(
            _required(params, "KeyId"),
            _required(params, "Plaintext"),
            check_context(params.get("EncryptionContext")),
        )
        return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": SYMMETRIC_DEFAULT}

    async def decrypt(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        _check_algorithm(params)
        _check_dry_run(params)
        decrypted = await self._keys.decrypt(
            _required(params, "CiphertextBlob"),
            check_context(params.get("EncryptionContext")),
            params.get("KeyId"),
        )
        return {
            "KeyId": decrypted.key.arn,
            "Plaintext": decrypted.plaintext,
            "EncryptionAlgorithm": SYMMETRIC_DEFAULT,
        }

    async def re_encrypt(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        _check_algorithm(params, "SourceEncryptionAlgorithm")
        _check_algorithm(params, "DestinationEncryptionAlgorithm")
        _check_dry_run(params)
        blob, source, destination = await self._keys.re_encrypt(
            _required(params, "CiphertextBlob"),
            _required(params, "DestinationKeyId"),
            source_context=check_context(params.get("SourceEncryptionContext")),
            destination_context=check_context(params.get("DestinationEncryptionContext")),
            source_key_ref=params.get("SourceKeyId"),
        )
        return {
            "CiphertextBlob": blob,
            "SourceKeyId": source.arn,
            "KeyId": destination.arn,
            "SourceEncryptionAlgorithm": SYMMETRIC_DEFAULT,
            "DestinationEncryptionAlgorithm": SYMMETRIC_DEFAULT,
        }

    async def generate_data_key(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        _check_dry_run(params)
        data_key = await self._keys.generate_data_key(
            _required(params, "KeyId"),
            check_context(params.get("EncryptionContext")),
            number_of_bytes=params.get("NumberOfBytes"),
            key_spec=params.get("KeySpec"),
        )
        return {
            "CiphertextBlob": data_key.ciphertext,
            "Plaintext": data_key.plaintext,
            "KeyId": data_key.key.arn,
        }

    async def generate_data_key_without_plaintext(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        out = await self.generate_data_key(params, ctx)
        del out["Plaintext"]
        return out

    async def generate_random(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        size = params.get("NumberOfBytes")
        if size is None or not 1 <= size <= 1024:
            raise KmsValidationException("NumberOfBytes must be between 1 and 1024.")
        return {"Plaintext": os.urandom(size)}
