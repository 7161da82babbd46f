"""Policy documents: parsed once, checked against IAM's grammar, compiled for matching.

Identity policies (inline and managed) must not name a `Principal` and must name a
`Resource`; resource policies (a role's trust policy, a function's policy) must name
a `Principal` and may leave out `Resource` (it is then the resource they are on).
Anything else refused is a `MalformedPolicyDocument` with IAM's message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lamina.iam.conditions import Condition, ConditionCompiler
from lamina.iam.errors import MalformedPolicyDocument
from lamina.iam.patterns import Facts, Pattern, compile_glob

VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = frozenset(
    {
        "Sid",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Principal",
        "NotPrincipal",
        "Condition",
    }
)
_ACTION = re.compile(r"^(\*|[A-Za-z0-9-]+:[A-Za-z0-9*?]+)$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_PRINCIPAL_ARN = re.compile(r"^arn:aws:(iam|sts)::(\d{12}):(root|user/.+|role/.+|assumed-role/.+)$")


class PolicyKind(StrEnum):
    IDENTITY = "identity"
    RESOURCE = "resource"


class Effect(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


@dataclass(frozen=True, slots=True)
class PrincipalSpec:
    """A statement's `Principal`: `"*"`, or AWS principals (ARNs, account roots) and
    service principals. Account ids are stored as `arn:aws:iam::ACCOUNT:root`."""

    anyone: bool
    aws: frozenset[str]
    services: frozenset[str]


@dataclass(frozen=True, slots=True)
class Statement:
    sid: str | None
    effect: Effect
    actions: tuple[re.Pattern[str], ...]
    not_action: bool
    resources: tuple[Pattern, ...] | None  # None: a resource policy without Resource
    not_resource: bool
    principal: PrincipalSpec | None
    not_principal: bool
    conditions: tuple[Condition, ...]

    def matches_action(self, action: str) -> bool:
        hit = any(p.fullmatch(action) for p in self.actions)
        return hit != self.not_action

    def matches_resource(self, resource: str, facts: Facts) -> bool:
        if self.resources is None:
            return True
        hit = any(p.matches(resource, facts) for p in self.resources)
        return hit != self.not_resource

    def conditions_hold(self, facts: Facts) -> bool:
        return all(c.holds(facts) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    version: str
    statements: tuple[Statement, ...]
    text: str  # as given: IAM returns documents as they were written

    def for_action(self, action: str) -> PolicyDocument:
        """This policy with only the statements that can apply to `action`."""
        kept = tuple(s for s in self.statements if s.matches_action(action))
        return PolicyDocument(self.version, kept, self.text)


class PolicyParser:
    """Parses and checks policy documents (owns the compiled operator table)."""

    def __init__(self) -> None:
        self._conditions = ConditionCompiler()

    def parse(self, text: str, kind: PolicyKind = PolicyKind.IDENTITY) -> PolicyDocument:
        try:
            raw = json.loads(text)
        except (ValueError, TypeError):
            raise MalformedPolicyDocument("Syntax errors in policy.") from None
        if not isinstance(raw, dict):
            raise MalformedPolicyDocument("Syntax errors in policy.")
        unknown = set(raw) - {"Version", "Id", "Statement"}
        if unknown:
            raise MalformedPolicyDocument("Syntax errors in policy.")
        version = raw.get("Version", "2008-10-17")
        if version not in VERSIONS:
            raise MalformedPolicyDocument("The policy failed legacy parsing")
        body = raw.get("Statement")
        if body is None:
            raise MalformedPolicyDocument("Missing required field Statement")
        items = body if isinstance(body, list) else [body]
        if not items:
            raise MalformedPolicyDocument("Missing required field Statement")
        # Policy variables exist only in the 2012-10-17 grammar; before it `${` is text.
        variables = version == "2012-10-17"
        statements = tuple(self._statement(item, kind, variables) for item in items)
        return PolicyDocument(version, statements, text)

    def _statement(self, raw: Any, kind: PolicyKind, variables: bool) -> Statement:
        if not isinstance(raw, dict) or set(raw) - _STATEMENT_KEYS:
            raise MalformedPolicyDocument("Syntax errors in policy.")
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise MalformedPolicyDocument(f"Invalid effect: {effect}")
        actions, not_action = _either(raw, "Action", "NotAction", "actions")
        for action in actions:
            if not _ACTION.match(action):
                raise MalformedPolicyDocument(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
                )
        has_principal = "Principal" in raw or "NotPrincipal" in raw
        if kind is PolicyKind.IDENTITY and has_principal:
            raise MalformedPolicyDocument("Policy document should not specify a principal.")
        if kind is PolicyKind.RESOURCE and not has_principal:
            raise MalformedPolicyDocument("Missing required field Principal")
        resources: tuple[Pattern, ...] | None = None
        not_resource = False
        if kind is PolicyKind.IDENTITY or "Resource" in raw or "NotResource" in raw:
            texts, not_resource = _either(raw, "Resource", "NotResource", "resources")
            resources = tuple(Pattern.of(t, arn=True, variables=variables) for t in texts)
        principal, not_principal = None, False
        if has_principal:
            not_principal = "NotPrincipal" in raw
            principal = _principal(raw["NotPrincipal" if not_principal else "Principal"])
        conditions: tuple[Condition, ...] = ()
        if "Condition" in raw:
            conditions = self._conditions.compile(raw["Condition"], variables=variables)
        sid = raw.get("Sid")
        return Statement(
            sid=str(sid) if sid is not None else None,
            effect=Effect(effect),
            actions=tuple(compile_glob(a, ignore_case=True) for a in actions),
            not_action=not_action,
            resources=resources,
            not_resource=not_resource,
            principal=principal,
            not_principal=not_principal,
            conditions=conditions,
        )


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, str) for i in items):
        raise MalformedPolicyDocument("Syntax errors in policy.")
    return list(items)


def _either(raw: dict[str, Any], positive: str, negative: str, noun: str) -> tuple[list[str], bool]:
    if positive in raw and negative in raw:
        raise MalformedPolicyDocument("Syntax errors in policy.")
    if positive not in raw and negative not in raw:
        raise MalformedPolicyDocument(f"Policy statement must contain {noun}.")
    name = positive if positive in raw else negative
    values = _strings(raw[name])
    if not values:
        raise MalformedPolicyDocument(f"Policy statement must contain {noun}.")
    return values, name == negative


def _principal(raw: Any) -> PrincipalSpec:
    if raw == "*":
        return PrincipalSpec(True, frozenset(), frozenset())
    if not isinstance(raw, dict) or not raw:
        raise MalformedPolicyDocument("Invalid principal in policy")
    aws: set[str] = set()
    services: set[str] = set()
    for kind, value in raw.items():
        for item in _strings(value):
            if kind == "AWS":
                aws.add(_aws_principal(item))
            elif kind == "Service":
                services.add(item)
            elif kind in ("Federated", "CanonicalUser"):
                continue  # no federation in lamina: such a principal never matches
            else:
                raise MalformedPolicyDocument(f'Invalid principal in policy: "{kind}":"{item}"')
    return PrincipalSpec("*" in aws, frozenset(aws - {"*"}), frozenset(services))


def _aws_principal(item: str) -> str:
    if item == "*":
        return item
    if _ACCOUNT_ID.match(item):
        return f"arn:aws:iam::{item}:root"
    if not _PRINCIPAL_ARN.match(item):
        raise MalformedPolicyDocument(f'Invalid principal in policy: "AWS":"{item}"')
    return item
