"""Principals and request facts: who a credential signs as, and what a policy sees.

Pure functions over the entities, used by the directory when it builds credentials
and evaluates requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from lamina.iam.evaluation import Requester
from lamina.iam.model import Principal, PrincipalKind, Role, RoleSession, User
from lamina.iam.patterns import Facts

_PRINCIPAL_TYPES = {
    PrincipalKind.ROOT: "Account",
    PrincipalKind.USER: "User",
    PrincipalKind.ASSUMED_ROLE: "AssumedRole",
}


def root_principal(account: str) -> Principal:
    return Principal(
        arn=f"arn:aws:iam::{account}:root",
        kind=PrincipalKind.ROOT,
        account=account,
        name="root",
        user_id=account,
    )


def user_principal(account: str, user: User) -> Principal:
    return Principal(
        arn=user.arn, kind=PrincipalKind.USER, account=account, name=user.name, user_id=user.user_id
    )


def session_principal(account: str, role: Role, session: RoleSession) -> Principal:
    return Principal(
        arn=f"arn:aws:sts::{account}:assumed-role/{role.name}/{session.session_name}",
        kind=PrincipalKind.ASSUMED_ROLE,
        account=account,
        name=role.name,
        user_id=f"{role.role_id}:{session.session_name}",
        session_token_expected=session.session_token,
        expires=session.expires,
        session_name=session.session_name,
    )


def requester(principal: Principal, role: Role | None) -> Requester:
    """A principal as a resource policy's `Principal` sees it: a session is also named
    by its role's ARN (a policy that names the role covers all its sessions)."""
    arns = {principal.arn}
    if role is not None:
        arns.add(role.arn)
    return Requester(frozenset(arns), principal.account)


def _values(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(v for item in value for v in _values(item))
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, datetime):
        return (value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),)
    return (str(value),)


def context_facts(context: Mapping[str, object]) -> dict[str, tuple[str, ...]]:
    """Condition keys as policies compare them: lower-cased names, string values."""
    return {k.lower(): _values(v) for k, v in context.items()}


def request_facts(
    principal: Principal, role: Role | None, context: Mapping[str, object], now: float
) -> Facts:
    """The condition keys of one request: the caller's `context` plus the global keys
    AWS sets from the principal and the clock (those cannot be overridden)."""
    facts = context_facts(context)
    facts["aws:principalaccount"] = (principal.account,)
    facts["aws:principaltype"] = (_PRINCIPAL_TYPES[principal.kind],)
    facts["aws:userid"] = (principal.user_id,)
    # For a session, aws:PrincipalArn is the role's ARN, not the session's.
    facts["aws:principalarn"] = (role.arn if role is not None else principal.arn,)
    if principal.kind is PrincipalKind.USER:
        facts["aws:username"] = (principal.name,)
    else:
        facts.pop("aws:username", None)
    if principal.session_name is not None:
        facts["aws:rolesessionname"] = (principal.session_name,)
    facts["aws:currenttime"] = (datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),)
    facts["aws:epochtime"] = (str(int(now)),)
    return facts


def role_of_session_arn(arn: str) -> str | None:
    """`arn:aws:sts::ACCT:assumed-role/ROLE/SESSION` -> ROLE."""
    _, sep, rest = arn.partition(":assumed-role/")
    return rest.split("/", 1)[0] if sep else None
