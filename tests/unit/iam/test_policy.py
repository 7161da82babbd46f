"""The policy grammar: what IAM refuses as MalformedPolicyDocument, and why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lamina.iam.errors import MalformedPolicyDocument
from lamina.iam.policy import Effect, PolicyKind, PolicyParser

OK_STATEMENT = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}


def parse(document: Any, kind: PolicyKind = PolicyKind.IDENTITY) -> Any:
    text = document if isinstance(document, str) else json.dumps(document)
    return PolicyParser().parse(text, kind)


def test_single_statement_object_and_string_values() -> None:
    policy = parse({"Version": "2012-10-17", "Statement": OK_STATEMENT})
    (statement,) = policy.statements
    assert statement.effect is Effect.ALLOW and statement.matches_action("S3:getobject")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "Syntax errors in policy."),
        ([], "Syntax errors in policy."),
        ({"Version": "2012-10-17"}, "Missing required field Statement"),
        ({"Version": "2012-10-17", "Statement": []}, "Missing required field Statement"),
        ({"Version": "2013-01-01", "Statement": OK_STATEMENT}, "The policy failed legacy parsing"),
        ({"Version": "2012-10-17", "Statement": OK_STATEMENT, "Extra": 1}, "Syntax errors in policy."),
        ({"Statement": {**OK_STATEMENT, "Effect": "Alow"}}, "Invalid effect: Alow"),
        ({"Statement": {"Effect": "Allow", "Resource": "*"}}, "Policy statement must contain actions."),
        ({"Statement": {"Effect": "Allow", "Action": "s3:x"}}, "Policy statement must contain resources."),
        ({"Statement": {**OK_STATEMENT, "NotAction": "s3:x"}}, "Syntax errors in policy."),
        ({"Statement": {**OK_STATEMENT, "Action": "GetObject"}}, "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
        ({"Statement": {**OK_STATEMENT, "Principal": "*"}}, "Policy document should not specify a principal."),
        ({"Statement": {**OK_STATEMENT, "Action": 5}}, "Syntax errors in policy."),
        ({"Statement": {**OK_STATEMENT, "Condition": {"StringEqualz": {"k": "v"}}}}, "Invalid Condition type : StringEqualz."),
        ({"Statement": {**OK_STATEMENT, "Condition": {"ForSomeValues:StringEquals": {"k": "v"}}}}, "Invalid Condition type : ForSomeValues:StringEquals."),
        ({"Statement": {**OK_STATEMENT, "Condition": {"StringEquals": {"k": []}}}}, "Condition StringEquals for key k has no values."),
        ({"Statement": {**OK_STATEMENT, "Condition": {"StringEquals": {"k": {"x": 1}}}}}, "Syntax errors in policy."),
    ],
)  # fmt: skip
def test_malformed_identity_policies(document: Any, message: str) -> None:
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse(document)
    assert caught.value.message == message
    assert caught.value.status == 400 and caught.value.code == "MalformedPolicyDocument"


def trust(principal: Any) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}],
    }


def test_trust_policy_needs_a_principal_and_no_resource() -> None:
    parse(trust({"Service": "lambda.amazonaws.com"}), PolicyKind.RESOURCE)
    with pytest.raises(MalformedPolicyDocument, match="Missing required field Principal"):
        parse({"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole"}}, PolicyKind.RESOURCE)


def test_account_ids_become_root_arns() -> None:
    policy = parse(trust({"AWS": ["123456789012"]}), PolicyKind.RESOURCE)
    spec = policy.statements[0].principal
    assert spec is not None and spec.aws == frozenset({"arn:aws:iam::123456789012:root"})


@pytest.mark.parametrize(
    "bad", [{"AWS": "bob"}, {"AWS": "arn:aws:s3:::bucket"}, {"Robot": "x"}, "root", {}]
)
def test_invalid_principals(bad: Any) -> None:
    with pytest.raises(MalformedPolicyDocument, match="Invalid principal in policy"):
        parse(trust(bad), PolicyKind.RESOURCE)
