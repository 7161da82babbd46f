"""Policy evaluation for requests within one account, as AWS's "Policy evaluation
logic" documents it:

1. an explicit `Deny` in any applicable policy (identity or resource) wins;
2. otherwise an `Allow` in an identity policy, or in a resource policy whose
   `Principal` names the caller, allows;
3. otherwise the request is implicitly denied.

A statement applies when its action, resource, principal (resource policies) and
every condition match. A resource policy naming the whole account
(`arn:aws:iam::ACCOUNT:root`) delegates to the account's identity policies: it
denies for everyone in the account but allows only the account root. Trust policies
are the exception: there the account principal does trust everyone in the account
(who must then also be allowed `sts:AssumeRole` by their own policies).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from lamina.iam.patterns import Facts
from lamina.iam.policy import Effect, PolicyDocument, PrincipalSpec, Statement


class Reason(StrEnum):
    ROOT = "root"  # the account root may do everything
    IDENTITY_ALLOW = "identity-allow"
    RESOURCE_ALLOW = "resource-allow"
    IDENTITY_DENY = "identity-deny"  # explicit deny in an identity-based policy
    RESOURCE_DENY = "resource-deny"  # explicit deny in a resource-based policy
    NO_ALLOW = "no-allow"  # implicit deny: nothing allows it


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    statement: str | None = None  # "policy-name" or "policy-name/Sid" that decided it


@dataclass(frozen=True, slots=True)
class Requester:
    """Who a resource policy's `Principal` is compared with."""

    arns: frozenset[str]  # exact ARNs naming the caller (user; session and its role)
    account: str | None
    service: str | None = None  # "lambda.amazonaws.com" when a service asks

    @property
    def account_root(self) -> str | None:
        return f"arn:aws:iam::{self.account}:root" if self.account else None


@dataclass(frozen=True, slots=True)
class NamedPolicy:
    name: str  # for Decision.statement: inline policy name or managed policy ARN
    document: PolicyDocument


def principal_matches(spec: PrincipalSpec, who: Requester, *, account_counts: bool) -> bool:
    if spec.anyone:
        return True
    if who.service is not None and who.service in spec.services:
        return True
    if who.arns & spec.aws:
        return True
    return account_counts and who.account_root in spec.aws


def _applies(
    statement: Statement, action: str, resource: str, facts: Facts, who: Requester | None
) -> bool:
    if not statement.matches_action(action):
        return False
    if not statement.matches_resource(resource, facts):
        return False
    if who is not None and statement.principal is not None:
        # Deny statements see the whole account behind an account principal.
        counts = statement.effect is Effect.DENY
        named = principal_matches(statement.principal, who, account_counts=counts)
        if named == statement.not_principal:
            return False
    return statement.conditions_hold(facts)


def _label(policy: NamedPolicy, statement: Statement) -> str:
    return f"{policy.name}/{statement.sid}" if statement.sid else policy.name


def evaluate(
    identity: Iterable[NamedPolicy],
    action: str,
    resource: str,
    facts: Facts,
    *,
    who: Requester,
    resource_policy: NamedPolicy | None = None,
) -> Decision:
    """The decision for a non-root principal (root is allowed before we get here)."""
    allowed: Decision | None = None
    for policy in identity:
        for statement in policy.document.statements:
            if not _applies(statement, action, resource, facts, None):
                continue
            if statement.effect is Effect.DENY:
                return Decision(False, Reason.IDENTITY_DENY, _label(policy, statement))
            allowed = allowed or Decision(True, Reason.IDENTITY_ALLOW, _label(policy, statement))
    if resource_policy is not None:
        for statement in resource_policy.document.statements:
            if not _applies(statement, action, resource, facts, who):
                continue
            if statement.effect is Effect.DENY:
                return Decision(False, Reason.RESOURCE_DENY, _label(resource_policy, statement))
            allowed = allowed or Decision(
                True, Reason.RESOURCE_ALLOW, _label(resource_policy, statement)
            )
    return allowed or Decision(False, Reason.NO_ALLOW)


def trusts(trust: PolicyDocument, action: str, resource: str, facts: Facts, who: Requester) -> bool:
    """Does a role's trust policy let `who` take the role (`action`: sts:AssumeRole)?"""
    trusted = False
    for statement in trust.statements:
        if not statement.matches_action(action) or statement.principal is None:
            continue
        if not statement.matches_resource(resource, facts):
            continue
        named = principal_matches(statement.principal, who, account_counts=True)
        if named == statement.not_principal or not statement.conditions_hold(facts):
            continue
        if statement.effect is Effect.DENY:
            return False
        trusted = True
    return trusted
