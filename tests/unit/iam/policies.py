"""Helpers for policy-evaluation tests: evaluate documents as a given user."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lamina.iam.access import request_facts
from lamina.iam.evaluation import Decision, NamedPolicy, Requester, evaluate
from lamina.iam.model import Principal, PrincipalKind
from lamina.iam.policy import PolicyKind, PolicyParser

ACCOUNT = "123456789012"
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
BOB = Principal(
    arn=f"arn:aws:iam::{ACCOUNT}:user/bob",
    kind=PrincipalKind.USER,
    account=ACCOUNT,
    name="bob",
    user_id="AIDABOB",
)


def doc(*statements: Mapping[str, Any], version: str = "2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def decide(
    identity: Sequence[str],
    action: str,
    resource: str,
    context: Mapping[str, object] | None = None,
    *,
    resource_policy: str | None = None,
    principal: Principal = BOB,
    now: float = NOW,
) -> Decision:
    parser = PolicyParser()
    named = [NamedPolicy(f"p{i}", parser.parse(d)) for i, d in enumerate(identity)]
    facts = request_facts(principal, None, context or {}, now)
    resource_named = (
        NamedPolicy("resource", parser.parse(resource_policy, PolicyKind.RESOURCE))
        if resource_policy is not None
        else None
    )
    who = Requester(frozenset({principal.arn}), principal.account)
    return evaluate(named, action, resource, facts, who=who, resource_policy=resource_named)


def allowed(*args: Any, **kwargs: Any) -> bool:
    return decide(*args, **kwargs).allowed
