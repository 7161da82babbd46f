"""Temporary credentials for roles: STS's AssumeRole, and a service taking a role
(Lambda giving a function its execution role).

A role may be taken only by whom its trust policy trusts. A principal taking it must
also be allowed `sts:AssumeRole` on it by its own policies (root always is); a
service is trusted by name (`"Service": "lambda.amazonaws.com"`). The credentials
sign as `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` with the role's policies.

AssumeRole sessions are stored so they survive a restart, as a client holding them
expects; a service's sessions are not, because what holds them (an execution
environment) does not survive one either, and an environment start must not wait
on a database write.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lamina.errors import AccessDenied
from lamina.iam import names
from lamina.iam.evaluation import Requester, trusts
from lamina.iam.model import Principal, PrincipalKind, Role, RoleSession, TemporaryCredentials
from lamina.iam.policy import PolicyKind

if TYPE_CHECKING:
    from lamina.iam.directory import IamDirectory

ASSUME_ROLE = "sts:AssumeRole"


def _refused(who: str, role_arn: str) -> AccessDenied:
    return AccessDenied(
        f"User: {who} is not authorized to perform: {ASSUME_ROLE} on resource: {role_arn}",
        code="AccessDenied",
    )


def role_trusts(
    directory: IamDirectory,
    role: Role,
    who: Requester,
    caller: Principal | None = None,
    context: Mapping[str, object] | None = None,
) -> bool:
    trust = directory.parse_policy(role.trust_policy, PolicyKind.RESOURCE)
    facts = directory.facts(caller, context)
    return trusts(trust, ASSUME_ROLE, role.arn, facts, who)


def role_trusts_service(directory: IamDirectory, role_arn: str, service: str) -> bool:
    role = directory.role_by_arn(role_arn)
    if role is None:
        return False
    return role_trusts(directory, role, Requester(frozenset(), None, service))


async def issue_role_credentials(
    directory: IamDirectory,
    role_arn: str,
    session_name: str,
    duration_s: int,
    trusted_service: str | None = None,
    *,
    caller: Principal | None = None,
    context: Mapping[str, object] | None = None,
) -> TemporaryCredentials:
    """Credentials for `role_arn`, for `trusted_service` or for `caller` (exactly one)."""
    if (trusted_service is None) == (caller is None):
        raise ValueError("name either the trusted service or the calling principal")
    names.check_session_name(session_name, by_service=caller is None)
    role = directory.role_by_arn(role_arn)
    who_text = caller.arn if caller is not None else str(trusted_service)
    if role is None:
        # AWS does not tell a caller whether the role exists.
        raise _refused(who_text, role_arn)
    maximum = role.max_session_duration
    if caller is None:
        who = Requester(frozenset(), None, trusted_service)
        maximum = names.MAX_SESSION_SECONDS  # a service's session is not capped by the role
    else:
        who = directory.requester(caller)
        if caller.kind is PrincipalKind.ASSUMED_ROLE:
            maximum = min(maximum, names.CHAINED_SESSION_SECONDS)
        if not directory.authorize(caller, ASSUME_ROLE, role_arn, context).allowed:
            raise _refused(who_text, role_arn)
    if not role_trusts(directory, role, who, caller, context):
        raise _refused(who_text, role_arn)
    names.check_duration(duration_s, maximum)
    session = RoleSession(
        access_key_id=names.new_id("ASIA", 16),
        secret=names.new_secret(),
        session_token=names.new_session_token(),
        role_name=role.name,
        session_name=session_name,
        expires=float(int(directory.clock() + duration_s)),  # AWS expirations are whole seconds
    )
    credential = await directory.add_session(session, durable=caller is not None)
    return TemporaryCredentials(
        access_key_id=session.access_key_id,
        secret=session.secret,
        session_token=session.session_token,
        expiration=datetime.fromtimestamp(session.expires, UTC),
        principal=credential.principal,
    )
