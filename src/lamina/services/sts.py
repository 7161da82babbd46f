"""STS API (botocore model `sts`, query protocol): GetCallerIdentity and AssumeRole,
and the SigV4 verifier that knows temporary credentials need their session token.

`SessionTokenVerifier` is the verifier to give `AwsRouter` whenever IAM is on: a
plain `SigV4Verifier` sees only access key ids, so it would accept temporary
credentials sent without (or with someone else's) session token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from lamina.errors import LaminaError
from lamina.iam import IamDirectory, Principal
from lamina.iam.errors import IamValidationError
from lamina.protocols.context import RequestContext
from lamina.protocols.sigv4 import SigV4Error, SigV4Identity, SigV4Verifier
from lamina.services.iam import PrincipalOf, request_conditions

DEFAULT_DURATION_SECONDS = 3600


class SessionTokenVerifier(SigV4Verifier):
    """SigV4 against the directory's secrets, plus the session-token rule."""

    def __init__(
        self,
        directory: IamDirectory,
        clock: Callable[[], float] = time.time,
        *,
        key_cache_size: int = 1024,
    ) -> None:
        super().__init__(directory.lookup_secret, clock, key_cache_size=key_cache_size)
        self._directory = directory

    def verify(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> SigV4Identity:
        headers = list(headers)
        try:
            identity = super().verify(method, path, query_string, headers, body)
        except SigV4Error as error:
            if error.code == "UnrecognizedClientException":
                self._raise_if_expired(headers, query_string, error.service)
            raise
        if self._directory.authenticate(identity.access_key_id, identity.session_token) is None:
            # The same answer AWS gives for an unknown key: nothing about which part was wrong.
            raise SigV4Error(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                identity.service,
            )
        return identity

    def _raise_if_expired(
        self, headers: list[tuple[str, str]], query_string: str, service: str | None
    ) -> None:
        """Say "expired" rather than "invalid" for a session that ran out, as AWS does,
        so a client knows to get new credentials rather than suspect its configuration."""
        key_id = _access_key_id(headers, query_string)
        if key_id is None or not self._directory.expired(key_id):
            return
        # Query APIs (IAM, STS) name the error without the "Exception" suffix.
        code = "ExpiredToken" if service in ("iam", "sts") else "ExpiredTokenException"
        raise SigV4Error(code, "The security token included in the request is expired", service)


def _access_key_id(headers: list[tuple[str, str]], query_string: str) -> str | None:
    """The access key id a request claims (header or presigned form), unverified."""
    for name, value in headers:
        if name.lower() == "authorization":
            _, _, credential = value.partition("Credential=")
            return credential.split("/", 1)[0] or None
    for pair in query_string.split("&"):
        name, _, value = pair.partition("=")
        if name == "X-Amz-Credential":
            return unquote(value).split("/", 1)[0] or None
    return None


class StsService:
    """The STS operations lamina serves; `principal_of` says who called."""

    def __init__(self, directory: IamDirectory, principal_of: PrincipalOf) -> None:
        self._directory = directory
        self._principal_of = principal_of

    async def __call__(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        caller = self._principal_of(ctx)
        if operation == "GetCallerIdentity":
            # Needs no permission: AWS answers it even when every action is denied.
            return {"UserId": caller.user_id, "Account": caller.account, "Arn": caller.arn}
        if operation == "AssumeRole":
            return await self._assume_role(params, ctx, caller)
        raise LaminaError(
            f"lamina's STS does not implement {operation}.",
            code="UnknownOperationException",
            status=400,
        )

    async def _assume_role(
        self, params: dict[str, Any], ctx: RequestContext, caller: Principal
    ) -> dict[str, Any]:
        role_arn = params.get("RoleArn")
        session_name = params.get("RoleSessionName")
        if not role_arn or not session_name:
            member = "roleArn" if not role_arn else "roleSessionName"
            raise IamValidationError(
                f"1 validation error detected: Value null at '{member}' failed to satisfy "
                "constraint: Member must not be null"
            )
        if params.get("Policy") or params.get("PolicyArns"):
            # Session policies narrow a session; ignoring them would grant more than asked.
            raise IamValidationError(
                "lamina does not support session policies (Policy, PolicyArns)."
            )
        context = request_conditions(ctx)
        context["sts:RoleSessionName"] = session_name
        if params.get("ExternalId"):
            context["sts:ExternalId"] = params["ExternalId"]
        credentials = await self._directory.issue_role_credentials(
            role_arn,
            session_name,
            int(params.get("DurationSeconds") or DEFAULT_DURATION_SECONDS),
            caller=caller,
            context=context,
        )
        session = credentials.principal
        return {
            "Credentials": {
                "AccessKeyId": credentials.access_key_id,
                "SecretAccessKey": credentials.secret,
                "SessionToken": credentials.session_token,
                "Expiration": credentials.expiration,
            },
            "AssumedRoleUser": {"AssumedRoleId": session.user_id, "Arn": session.arn},
            "PackedPolicySize": 0,
        }
