"""The KMS and Secrets Manager handlers called directly (no HTTP): dispatch, refusals,
and no secret value in any error message."""

from __future__ import annotations

from typing import Any

import pytest

from lamina.errors import AccessDenied, LaminaError
from lamina.protocols.context import RequestContext
from lamina.secrets import KeyStore, SecretStore
from lamina.services.kms import KmsService
from lamina.services.secretsmanager import SecretsManagerService, random_password


def ctx(service: str, operation: str) -> RequestContext:
    return RequestContext(
        request_id="req-1",
        access_key_id="AKIDTEST",
        account_id="000000000000",
        region="eu-west-1",
        service=service,
        operation=operation,
        headers={},
        source_ip="127.0.0.1",
    )


async def call(service: Any, name: str, operation: str, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = await service(operation, params, ctx(name, operation))
    return result


@pytest.mark.parametrize("name", ["kms", "secretsmanager"])
async def test_unknown_operations(name: str, keys: KeyStore, secrets_store: SecretStore) -> None:
    service = KmsService(keys) if name == "kms" else SecretsManagerService(secrets_store)
    with pytest.raises(LaminaError) as info:
        await call(service, name, "TagResource")
    assert (info.value.code, info.value.status) == ("UnknownOperationException", 400)


async def test_key_region_comes_from_the_request(keys: KeyStore) -> None:
    out = await call(KmsService(keys), "kms", "CreateKey")
    assert out["KeyMetadata"]["Arn"].startswith("arn:aws:kms:eu-west-1:000000000000:key/")


async def test_refusals_never_carry_the_value(secrets_store: SecretStore) -> None:
    sm = SecretsManagerService(secrets_store)
    token = "t" * 32
    await call(sm, "secretsmanager", "CreateSecret", Name="s", SecretString="first-value")
    await call(
        sm,
        "secretsmanager",
        "PutSecretValue",
        SecretId="s",
        SecretString="v2",
        ClientRequestToken=token,
    )
    with pytest.raises(LaminaError) as info:
        await call(
            sm,
            "secretsmanager",
            "PutSecretValue",
            SecretId="s",
            SecretString="changed-value",
            ClientRequestToken=token,
        )
    assert info.value.code == "ResourceExistsException"
    assert "changed-value" not in str(info.value) and "v2" not in info.value.message
    with pytest.raises(LaminaError) as info:
        await call(sm, "secretsmanager", "CreateSecret", Name="s", SecretString="dup-value")
    assert "dup-value" not in str(info.value)
    with pytest.raises(LaminaError) as info:
        await call(
            sm, "secretsmanager", "CreateSecret", Name="x", SecretString="a", SecretBinary=b"b"
        )
    assert info.value.code == "InvalidParameterException"


async def test_kms_validation(keys: KeyStore) -> None:
    kms = KmsService(keys)
    key_id = (await call(kms, "kms", "CreateKey"))["KeyMetadata"]["KeyId"]
    with pytest.raises(LaminaError) as info:
        await call(kms, "kms", "Encrypt", KeyId=key_id, Plaintext=b"x" * 4097)
    assert info.value.code == "ValidationException"
    with pytest.raises(LaminaError) as info:
        await call(kms, "kms", "CreateKey", KeySpec="RSA_2048")
    assert info.value.code == "UnsupportedOperationException"
    with pytest.raises(LaminaError) as info:
        await call(kms, "kms", "ListKeys", Marker="garbage")
    assert info.value.code == "InvalidMarkerException"


def test_random_password_classes() -> None:
    password = random_password({"PasswordLength": 64, "ExcludeCharacters": "abc"})
    assert len(password) == 64 and not set("abc") & set(password)
    assert any(c.isdigit() for c in password) and any(c.isupper() for c in password)
    with pytest.raises(LaminaError):
        random_password(
            {
                "ExcludeLowercase": True,
                "ExcludeUppercase": True,
                "ExcludeNumbers": True,
                "ExcludePunctuation": True,
            }
        )


class RecordingAccess:
    """An AccessCheck that records every check and refuses one resource."""

    def __init__(self, refuse: str = "") -> None:
        self.checks: list[tuple[str, str]] = []
        self.refuse = refuse

    async def __call__(self, ctx: RequestContext, action: str, resource_arn: str) -> None:
        self.checks.append((action, resource_arn))
        if resource_arn == self.refuse:
            raise AccessDenied(f"not allowed: {action} on {resource_arn}")


async def test_kms_asks_access_for_the_key_each_request_uses(keys: KeyStore) -> None:
    access = RecordingAccess()
    kms = KmsService(keys, access)
    key = (await call(kms, "kms", "CreateKey"))["KeyMetadata"]
    await call(kms, "kms", "CreateAlias", AliasName="alias/k", TargetKeyId=key["KeyId"])
    blob = (await call(kms, "kms", "Encrypt", KeyId="alias/k", Plaintext=b"x"))["CiphertextBlob"]
    await call(kms, "kms", "Decrypt", CiphertextBlob=blob)
    assert access.checks == [
        ("kms:CreateKey", "*"),
        ("kms:CreateAlias", key["Arn"]),
        ("kms:Encrypt", key["Arn"]),
        ("kms:Decrypt", key["Arn"]),
    ]
    access.refuse = key["Arn"]
    with pytest.raises(AccessDenied):
        await call(kms, "kms", "Decrypt", CiphertextBlob=blob)
    unknown = "arn:aws:kms:eu-west-1:000000000000:key/00000000-0000-0000-0000-000000000000"
    access.refuse = unknown
    with pytest.raises(AccessDenied):  # refused before learning the key does not exist
        await call(kms, "kms", "DescribeKey", KeyId=unknown.rsplit("/", 1)[1])


async def test_secrets_manager_asks_access_for_the_secret_arn(
    secrets_store: SecretStore,
) -> None:
    access = RecordingAccess()
    sm = SecretsManagerService(secrets_store, access)
    spelled = "arn:aws:secretsmanager:eu-west-1:000000000000:secret:"
    arn = (await call(sm, "secretsmanager", "CreateSecret", Name="db", SecretString="v"))["ARN"]
    await call(sm, "secretsmanager", "GetSecretValue", SecretId="db")
    await call(sm, "secretsmanager", "ListSecrets")
    assert access.checks == [
        ("secretsmanager:CreateSecret", spelled + "db"),
        ("secretsmanager:GetSecretValue", arn),
        ("secretsmanager:ListSecrets", "*"),
    ]
    access.refuse = arn
    with pytest.raises(AccessDenied):
        await call(sm, "secretsmanager", "GetSecretValue", SecretId=arn)
    access.refuse = spelled + "missing"
    with pytest.raises(AccessDenied):
        await call(sm, "secretsmanager", "GetSecretValue", SecretId="missing")
