"""Principals and request facts: who a credential signs as, and what a policy sees.

Pure functions over the entities, used by the directory when it builds credentials
and evaluates requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from lamina.iam.evaluation import Requester
from lamina.iam.model import (
    AccessKey,
    Credential,
    Principal,
    PrincipalKind,
    Role,
    RoleSession,
    User,
)
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


def credential_table(
    account: str,
    root: Credential,
    users: Mapping[str, User],
    keys: Iterable[AccessKey],
    roles: Mapping[str, Role],
    sessions: Iterable[RoleSession],
) -> dict[str, Credential]:
    """Access key id -> credential, for every key that may sign: the root's, active
    keys of existing users, and sessions of existing roles (expiry is checked at use)."""
    table = {root.access_key_id: root}
    for key in keys:
        user = users.get(key.user_name.lower())
        if user is not None and key.status == "Active":
            table[key.access_key_id] = Credential(
                key.access_key_id, key.secret, user_principal(account, user)
            )
    for session in sessions:
        role = roles.get(session.role_name.lower())
        if role is not None:
            table[session.access_key_id] = Credential(
                session.access_key_id, session.secret, session_principal(account, role, session)
            )
    return table
