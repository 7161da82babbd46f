"""Secrets Manager API (botocore model `secretsmanager`, json protocol) over SecretStore.

Versions, staging labels, deletion windows and encryption live in `lamina.secrets`.
Values leave this module only in GetSecretValue's output; they are never logged or
put into an error message.

With an `AccessCheck` (the IAM layer's authorizer), each request is checked first as
`secretsmanager:<Operation>` on the secret's ARN (with its random suffix, as IAM sees
it), on the suffix-less ARN its name spells for CreateSecret and unknown secrets, and
on "*" for ListSecrets and GetRandomPassword. A function's role credentials are what
reach here from inside a function, so its role decides what it may read.
"""

from __future__ import annotations

import secrets
import string
from typing import Any, Protocol

from lamina.protocols.context import RequestContext
from lamina.secrets.errors import InvalidParameterException, ResourceNotFoundException
from lamina.secrets.secret_listing import ListFilter
from lamina.secrets.secret_model import Secret, value_from
from lamina.secrets.secret_store import SecretStore
from lamina.services.operations import OperationTable

PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


class AccessCheck(Protocol):
    """May the caller do `action` on `resource_arn`? Raises AccessDenied if not."""

    async def __call__(self, ctx: RequestContext, action: str, resource_arn: str) -> None: ...


def _required(params: dict[str, Any], member: str) -> Any:
    value = params.get(member)
    if value is None:
        raise InvalidParameterException(f"You must provide a value for {member}.")
    return value


def _tags(secret: Secret) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in secret.tags]


def _metadata(secret: Secret) -> dict[str, Any]:
    """The members DescribeSecret and ListSecrets' entries share."""
    out: dict[str, Any] = {
        "ARN": secret.arn,
        "Name": secret.name,
        "RotationEnabled": False,
        "LastChangedDate": secret.last_changed,
        "CreatedDate": secret.created,
    }
    optional = {
        "Description": secret.description,
        "KmsKeyId": secret.kms_key_id,
        "LastAccessedDate": secret.last_accessed,
        "DeletedDate": secret.deleted,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    if secret.tags:
        out["Tags"] = _tags(secret)
    return out


def _labelled(secret: Secret) -> dict[str, list[str]]:
    # Deprecated versions (no labels) are not listed, as in Secrets Manager.
    return {vid: list(stages) for vid, stages in secret.version_stages.items() if stages}


class SecretsManagerService:
    """ServiceHandler for the `secretsmanager` signing name."""

    def __init__(self, store: SecretStore, access: AccessCheck | None = None) -> None:
        self._store = store
        self._access = access
        self._table = OperationTable(
            "Secrets Manager",
            {
                "CreateSecret": self.create_secret,
                "GetSecretValue": self.get_secret_value,
                "PutSecretValue": self.put_secret_value,
                "UpdateSecret": self.update_secret,
                "DescribeSecret": self.describe_secret,
                "ListSecrets": self.list_secrets,
                "DeleteSecret": self.delete_secret,
                "RestoreSecret": self.restore_secret,
                "GetRandomPassword": self.get_random_password,
            },
        )

    async def __call__(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        if self._access is not None and operation in self._table:
            resource = await self._resource(operation, params, ctx)
            await self._access(ctx, f"secretsmanager:{operation}", resource)
        return await self._table(operation, params, ctx)

    async def _resource(self, operation: str, params: dict[str, Any], ctx: RequestContext) -> str:
        spelled = f"arn:aws:secretsmanager:{ctx.region}:{ctx.account_id}:secret:"
        if operation == "CreateSecret":
            return spelled + str(params.get("Name") or "")
        secret_id = params.get("SecretId")
        if not secret_id:
            return "*"
        try:
            return (await self._store.describe_secret(secret_id)).arn
        except (ResourceNotFoundException, InvalidParameterException):
            # Refuse a caller without rights before telling it whether the secret exists.
            return str(secret_id) if str(secret_id).startswith("arn:") else spelled + str(secret_id)

    async def create_secret(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        secret, version_id = await self._store.create_secret(
            _required(params, "Name"),
            region=ctx.region,
            value=value_from(params.get("SecretString"), params.get("SecretBinary")),
            description=params.get("Description"),
            kms_key_id=params.get("KmsKeyId"),
            tags=[(t["Key"], t["Value"]) for t in params.get("Tags") or []],
            client_request_token=params.get("ClientRequestToken"),
        )
        out: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
        if version_id is not None:
            out["VersionId"] = version_id
        return out

    async def get_secret_value(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        version = await self._store.get_secret_value(
            _required(params, "SecretId"),
            version_id=params.get("VersionId"),
            version_stage=params.get("VersionStage"),
        )
        out: dict[str, Any] = {
            "ARN": version.secret.arn,
            "Name": version.secret.name,
            "VersionId": version.version_id,
            "VersionStages": list(version.stages),
            "CreatedDate": version.created,
        }
        if version.value.string is not None:
            out["SecretString"] = version.value.string
        else:
            out["SecretBinary"] = version.value.binary
        return out

    async def put_secret_value(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        value = value_from(params.get("SecretString"), params.get("SecretBinary"))
        if value is None:
            raise InvalidParameterException("You must provide either SecretString or SecretBinary.")
        stages = params.get("VersionStages")
        if stages is not None and not 1 <= len(stages) <= 20:
            raise InvalidParameterException("VersionStages must hold between 1 and 20 labels.")
        version = await self._store.put_secret_value(
            _required(params, "SecretId"),
            value,
            client_request_token=params.get("ClientRequestToken"),
            stages=stages,
        )
        return {
            "ARN": version.secret.arn,
            "Name": version.secret.name,
            "VersionId": version.version_id,
            "VersionStages": list(version.stages),
        }

    async def update_secret(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        secret, version_id = await self._store.update_secret(
            _required(params, "SecretId"),
            value=value_from(params.get("SecretString"), params.get("SecretBinary")),
            description=params.get("Description"),
            kms_key_id=params.get("KmsKeyId"),
            client_request_token=params.get("ClientRequestToken"),
        )
        out: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
        if version_id is not None:
            out["VersionId"] = version_id
        return out

    async def describe_secret(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        secret = await self._store.describe_secret(_required(params, "SecretId"))
        return {**_metadata(secret), "VersionIdsToStages": _labelled(secret)}

    async def list_secrets(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        max_results = params.get("MaxResults")
        if max_results is not None and not 1 <= max_results <= 100:
            raise InvalidParameterException("MaxResults must be between 1 and 100.")
        filters = [
            ListFilter(f.get("Key", ""), tuple(f.get("Values") or ()))
            for f in params.get("Filters") or []
        ]
        sort_order = params.get("SortOrder") or "asc"
        secrets_page, token = await self._store.list_secrets(
            include_planned_deletion=bool(params.get("IncludePlannedDeletion")),
            filters=filters,
            sort_order=sort_order,
            max_results=max_results,
            next_token=params.get("NextToken"),
        )
        out: dict[str, Any] = {
            "SecretList": [
                {**_metadata(s), "SecretVersionsToStages": _labelled(s)} for s in secrets_page
            ]
        }
        if token is not None:
            out["NextToken"] = token
        return out

    async def delete_secret(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        secret, deletion_date = await self._store.delete_secret(
            _required(params, "SecretId"),
            recovery_window_days=params.get("RecoveryWindowInDays"),
            force=bool(params.get("ForceDeleteWithoutRecovery")),
        )
        return {"ARN": secret.arn, "Name": secret.name, "DeletionDate": deletion_date}

    async def restore_secret(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        secret = await self._store.restore_secret(_required(params, "SecretId"))
        return {"ARN": secret.arn, "Name": secret.name}

    async def get_random_password(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        return {"RandomPassword": random_password(params)}


def random_password(params: dict[str, Any]) -> str:
    """GetRandomPassword: a CSPRNG password from the classes the request leaves in."""
    length = params.get("PasswordLength") or 32
    if not 1 <= length <= 4096:
        raise InvalidParameterException("PasswordLength must be between 1 and 4096.")
    excluded = set(params.get("ExcludeCharacters") or "")
    classes = [
        chars
        for chars, exclude in (
            (string.ascii_lowercase, params.get("ExcludeLowercase")),
            (string.ascii_uppercase, params.get("ExcludeUppercase")),
            (string.digits, params.get("ExcludeNumbers")),
            (PUNCTUATION, params.get("ExcludePunctuation")),
            (" ", not params.get("IncludeSpace")),
        )
        if not exclude
    ]
    classes = [
        c for c in ("".join(ch for ch in chars if ch not in excluded) for chars in classes) if c
    ]
    if not classes:
        raise InvalidParameterException("The password request excludes every character.")
    alphabet = "".join(classes)
    require_each = params.get("RequireEachIncludedType", True)
    if require_each and length < len(classes):
        raise InvalidParameterException(
            "PasswordLength is too short to include a character of each required type."
        )
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if not require_each or all(any(ch in chars for ch in password) for chars in classes):
            return password
