"""Policy evaluation against the examples of AWS's IAM documentation ("Policy
evaluation logic", "IAM JSON policy elements", "Example IAM identity-based policies")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.iam.policies import ACCOUNT, BOB, allowed, decide, doc

from lamina.iam.evaluation import Reason

S3_ALL = doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
BUCKET = "arn:aws:s3:::example-bucket"


def test_nothing_allows_by_default() -> None:
    decision = decide([], "s3:GetObject", f"{BUCKET}/a")
    assert not decision.allowed and decision.reason is Reason.NO_ALLOW


def test_explicit_deny_beats_any_allow() -> None:
    deny = doc({"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"})
    decision = decide([S3_ALL, deny], "s3:DeleteObject", f"{BUCKET}/a")
    assert not decision.allowed and decision.reason is Reason.IDENTITY_DENY
    assert decide([S3_ALL, deny], "s3:GetObject", f"{BUCKET}/a").allowed


def test_statement_label_names_policy_and_sid() -> None:
    policy = doc({"Sid": "ReadAll", "Effect": "Allow", "Action": "s3:Get*", "Resource": "*"})
    assert decide([policy], "s3:GetObject", BUCKET).statement == "p0/ReadAll"


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("s3:GetObject", "s3:GetObject", True),
        ("s3:Get*", "s3:GetObjectAcl", True),
        ("s3:Get*", "s3:PutObject", False),
        ("S3:GETOBJECT", "s3:GetObject", True),  # actions are case-insensitive
        ("s3:Get?bject", "s3:GetObject", True),
        ("s3:Get?bject", "s3:GetXXbject", False),
        ("*", "lambda:InvokeFunction", True),
        ("lambda:*", "s3:GetObject", False),
        ("iam:*AccessKey*", "iam:CreateAccessKey", True),
    ],
)
def test_action_wildcards(pattern: str, action: str, expected: bool) -> None:
    policy = doc({"Effect": "Allow", "Action": pattern, "Resource": "*"})
    assert allowed([policy], action, BUCKET) is expected


def test_not_action_allow_everything_but_iam() -> None:
    # "Allows all actions except IAM" (NotAction with Allow).
    policy = doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert allowed([policy], "s3:ListBucket", BUCKET)
    assert not allowed([policy], "iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/x")


def test_not_action_deny_everything_but_listed() -> None:
    # "Deny all but IAM": Allow * plus Deny NotAction iam:*.
    policies = [
        doc({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        doc({"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}),
    ]
    assert allowed(policies, "iam:GetUser", "*")
    assert decide(policies, "s3:GetObject", BUCKET).reason is Reason.IDENTITY_DENY


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        (f"{BUCKET}/*", f"{BUCKET}/a/b/c.txt", True),  # * spans "/" in the resource part
        (f"{BUCKET}/*", BUCKET, False),
        ("arn:aws:s3:::Example-Bucket/*", f"{BUCKET}/a", False),  # resources are case-sensitive
        ("arn:aws:lambda:*:123456789012:function:f", "arn:aws:lambda:eu-west-1:123456789012:function:f", True),
        ("arn:aws:lambda:us-east-1:123456789012:function:*", "arn:aws:lambda:us-east-1:123456789012:function:f:prod", True),
        ("arn:aws:lambda:us-east-1:*:function:f", "arn:aws:lambda:us-east-1:1:2:function:f", False),  # * stays in its part
        ("arn:aws:lambda:us-east-1:123456789012:function:f?", "arn:aws:lambda:us-east-1:123456789012:function:f1", True),
        ("arn:aws:lambda:*", "arn:aws:lambda:us-east-1:123456789012:function:f", True),  # short pattern: plain glob
        ("*", "arn:aws:anything", True),
    ],
)  # fmt: skip
def test_resource_wildcards(pattern: str, resource: str, expected: bool) -> None:
    policy = doc({"Effect": "Allow", "Action": "*", "Resource": pattern})
    assert allowed([policy], "s3:GetObject", resource) is expected


def test_not_resource_deny_outside_a_bucket() -> None:
    # "Deny access to everything except the HR bucket" (Deny with NotResource).
    policies = [
        S3_ALL,
        doc(
            {
                "Effect": "Deny",
                "Action": "s3:*",
                "NotResource": ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"],
            }
        ),
    ]
    assert allowed(policies, "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/jan.csv")
    assert not allowed(policies, "s3:GetObject", f"{BUCKET}/x")


def test_policy_variable_username_home_folder() -> None:
    policy = doc(
        {"Effect": "Allow", "Action": "s3:*", "Resource": f"{BUCKET}/home/${{aws:username}}/*"}
    )
    assert allowed([policy], "s3:PutObject", f"{BUCKET}/home/bob/notes.txt")
    assert not allowed([policy], "s3:PutObject", f"{BUCKET}/home/alice/notes.txt")


def test_policy_variables_only_in_version_2012() -> None:
    resource = f"{BUCKET}/home/${{aws:username}}/*"
    old = doc({"Effect": "Allow", "Action": "s3:*", "Resource": resource}, version="2008-10-17")
    assert not allowed([old], "s3:PutObject", f"{BUCKET}/home/bob/x")
    assert allowed([old], "s3:PutObject", f"{BUCKET}/home/${{aws:username}}/x")


def test_policy_variable_without_value_matches_nothing_unless_defaulted() -> None:
    missing = doc(
        {"Effect": "Allow", "Action": "s3:*", "Resource": f"{BUCKET}/${{aws:PrincipalTag/team}}/*"}
    )
    defaulted = doc(
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": f"{BUCKET}/${{aws:PrincipalTag/team, 'shared'}}/*",
        }
    )
    assert not allowed([missing], "s3:GetObject", f"{BUCKET}//x")
    assert allowed([defaulted], "s3:GetObject", f"{BUCKET}/shared/x")


def test_special_variables_are_literal_characters() -> None:
    policy = doc({"Effect": "Allow", "Action": "s3:*", "Resource": f"{BUCKET}/${{*}}"})
    assert allowed([policy], "s3:GetObject", f"{BUCKET}/*")
    assert not allowed([policy], "s3:GetObject", f"{BUCKET}/anything")


def test_username_variable_value_is_literal_in_patterns() -> None:
    policy = doc({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:userid}"})
    assert not allowed([policy], "s3:GetObject", "arn:aws:s3:::b/AIDAXXX", principal=BOB)
    assert allowed([policy], "s3:GetObject", "arn:aws:s3:::b/AIDABOB")


# -- resource-based policies ---------------------------------------------------------


def test_resource_policy_naming_the_user_allows_without_identity_policy() -> None:
    function = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"
    policy = doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": BOB.arn},
            "Action": "lambda:InvokeFunction",
            "Resource": function,
        }
    )
    decision = decide([], "lambda:InvokeFunction", function, resource_policy=policy)
    assert decision.allowed and decision.reason is Reason.RESOURCE_ALLOW


def test_resource_policy_naming_the_account_delegates_to_identity_policies() -> None:
    policy = doc({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "*", "Resource": "*"})
    assert not allowed([], "lambda:InvokeFunction", "arn:x", resource_policy=policy)


def test_resource_policy_deny_beats_identity_allow() -> None:
    deny = doc({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"})
    decision = decide([S3_ALL], "s3:GetObject", BUCKET, resource_policy=deny)
    assert not decision.allowed and decision.reason is Reason.RESOURCE_DENY


def test_resource_policy_account_deny_covers_every_user() -> None:
    deny = doc(
        {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "s3:*"}
    )
    assert not allowed([S3_ALL], "s3:GetObject", BUCKET, resource_policy=deny)


def test_resource_policy_for_someone_else_does_not_apply() -> None:
    other = doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"},
            "Action": "*",
        }
    )
    assert not allowed([], "s3:GetObject", BUCKET, resource_policy=other)
    not_alice = doc(
        {
            "Effect": "Allow",
            "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"},
            "Action": "*",
        }
    )
    assert allowed([], "s3:GetObject", BUCKET, resource_policy=not_alice)


def test_service_principal_does_not_match_a_user() -> None:
    policy = doc({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "*"})
    assert not allowed([], "lambda:InvokeFunction", "arn:x", resource_policy=policy)


# -- properties ----------------------------------------------------------------------

_ACTIONS = st.from_regex(r"\A[a-z]{2,8}:[A-Z][A-Za-z]{0,12}\Z")


@given(action=_ACTIONS, resource=st.text(min_size=1, max_size=40))
def test_a_matching_deny_always_wins(action: str, resource: str) -> None:
    policies = [
        doc({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        doc({"Effect": "Deny", "Action": action.split(":")[0] + ":*", "Resource": "*"}),
    ]
    assert not allowed(policies, action, resource)


@given(
    action=_ACTIONS, resource=st.from_regex(r"\Aarn:aws:[a-z]+:[a-z0-9-]*:\d{0,12}:[!-~]{1,30}\Z")
)
def test_a_pattern_without_wildcards_matches_exactly_itself(action: str, resource: str) -> None:
    literal = resource.replace("*", "x").replace("?", "x").replace("$", "x")
    policy = doc({"Effect": "Allow", "Action": action, "Resource": literal})
    assert allowed([policy], action.upper(), literal)
    assert not allowed([policy], action, literal + "x")
