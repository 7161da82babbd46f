"""Identity, access and secrets, composed: IAM and STS, the SigV4 verifier that knows
their keys, KMS, Secrets Manager, and the ciphers that keep secrets sealed at rest.

`app.py` builds this once at start-up and takes from it the service bindings, the
verifier, the authoriser for Lambda and the hooks the function engine needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.errors import InvalidParameterValue
from lamina.functions.model import FunctionConfig
from lamina.iam import Authorizer, IamDirectory, IamStore, PrincipalKind, RootKey
from lamina.protocols.context import RequestContext
from lamina.protocols.router import ServiceBinding
from lamina.secrets import (
    Envelope,
    EnvironmentCipher,
    KeyStore,
    SecretStore,
    load_or_create_master_key,
)
from lamina.services.iam import IamService, principal_lookup, request_conditions
from lamina.services.kms import KmsService
from lamina.services.secretsmanager import SecretsManagerService
from lamina.services.sts import SessionTokenVerifier, StsService
from lamina.storage.credentials import RootCredentials

LAMBDA_SERVICE = "lambda.amazonaws.com"
# Role credentials handed to an environment; environments are recycled before they end.
ROLE_SESSION_S = 12 * 3600


def identity_metadata() -> list[MetaData]:
    return [IamStore.metadata, KeyStore.metadata, SecretStore.metadata]


@dataclass(slots=True)
class Identity:
    master: Envelope  # seals with the master key alone (signing keys, ...)
    directory: IamDirectory
    verifier: SessionTokenVerifier
    authorizer: Authorizer
    env_cipher: EnvironmentCipher
    bindings: dict[str, ServiceBinding]

    def principal_of(self, ctx: Any) -> Any:
        return principal_lookup(self.directory)(ctx)

    @staticmethod
    def conditions(ctx: Any) -> dict[str, object]:
        return request_conditions(ctx)

    @staticmethod
    def is_root(principal: Any) -> bool:
        return bool(principal.kind is PrincipalKind.ROOT)

    async def may_decrypt(self, ctx: Any, key_arn: str) -> bool:
        """Is the caller allowed kms:Decrypt on `key_arn` (root always is)?"""
        principal = self.principal_of(ctx)
        if self.is_root(principal):
            return True
        decision = self.directory.authorize(principal, "kms:Decrypt", key_arn, self.conditions(ctx))
        return bool(decision.allowed)

    async def check_execution_role(self, role_arn: str) -> None:
        if not self.directory.role_trusts_service(role_arn, LAMBDA_SERVICE):
            raise InvalidParameterValue(
                "The role defined for the function cannot be assumed by Lambda. Create the role "
                "with a trust policy that allows lambda.amazonaws.com to call sts:AssumeRole."
            )

    async def role_environment(self, config: FunctionConfig) -> dict[str, str]:
        """The execution role's temporary credentials, as Lambda gives them to a function."""
        if not self.directory.role_trusts_service(config.role, LAMBDA_SERVICE):
            return {}  # created before IAM was enforced, or its role is gone: no credentials
        creds = await self.directory.issue_role_credentials(
            config.role, config.name, ROLE_SESSION_S, LAMBDA_SERVICE
        )
        return {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret,
            "AWS_SESSION_TOKEN": creds.session_token,
        }


async def start_identity(
    data_dir: Path,
    engine: AsyncEngine,
    creds: RootCredentials,
    account_id: str,
    master_key: str | None,
) -> Identity:
    master = load_or_create_master_key(data_dir, master_key)
    keys = KeyStore(engine, master, account_id)
    envelope = Envelope(master, keys)
    directory = IamDirectory(
        IamStore(engine, sealer=envelope),
        RootKey(creds.access_key_id, creds.secret_access_key),
        account_id,
    )
    await directory.start()
    principal_of = principal_lookup(directory)
    authorizer = Authorizer(directory)

    async def access(ctx: RequestContext, action: str, resource_arn: str) -> None:
        """KMS and Secrets Manager calls are allowed by the caller's policies (a
        function's by its execution role's)."""
        principal = principal_of(ctx)
        if principal.kind is not PrincipalKind.ROOT:
            await authorizer.check(principal, action, resource_arn, request_conditions(ctx))

    bindings = {
        "iam": ServiceBinding("iam", IamService(directory, principal_of)),
        "sts": ServiceBinding("sts", StsService(directory, principal_of)),
        "kms": ServiceBinding("kms", KmsService(keys, access=access)),
        "secretsmanager": ServiceBinding(
            "secretsmanager",
            SecretsManagerService(SecretStore(engine, envelope, account_id), access=access),
        ),
    }
    return Identity(
        master=Envelope(master),
        directory=directory,
        verifier=SessionTokenVerifier(directory, time.time),
        authorizer=authorizer,
        env_cipher=EnvironmentCipher(envelope),
        bindings=bindings,
    )
