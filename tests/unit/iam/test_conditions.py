"""The Condition element, table-driven from the examples in AWS's "IAM JSON policy
elements: Condition operators" and "Multivalued context keys" pages."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.iam.policies import NOW, allowed, doc

RESOURCE = "arn:aws:s3:::example-bucket"


def allow_if(condition: dict[str, Any]) -> str:
    return doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition})


CASES: list[tuple[str, dict[str, Any], dict[str, object], bool]] = [
    # String
    ("StringEquals", {"StringEquals": {"aws:PrincipalTag/job": "iamuser-admin"}}, {"aws:PrincipalTag/job": "iamuser-admin"}, True),
    ("StringEquals is case-sensitive", {"StringEquals": {"k": "Value"}}, {"k": "value"}, False),
    ("condition keys are case-insensitive", {"StringEquals": {"AWS:PrincipalTag/Job": "x"}}, {"aws:principaltag/job": "x"}, True),
    ("values are OR", {"StringEquals": {"k": ["a", "b"]}}, {"k": "b"}, True),
    ("keys are AND", {"StringEquals": {"k": "a", "j": "b"}}, {"k": "a", "j": "c"}, False),
    ("operators are AND", {"StringEquals": {"k": "a"}, "StringLike": {"j": "x*"}}, {"k": "a", "j": "xyz"}, True),
    ("missing key is false", {"StringEquals": {"k": "a"}}, {}, False),
    ("StringNotEquals", {"StringNotEquals": {"k": ["a", "b"]}}, {"k": "c"}, True),
    ("StringNotEquals any value hit", {"StringNotEquals": {"k": ["a", "b"]}}, {"k": "b"}, False),
    ("StringNotEquals missing key is true", {"StringNotEquals": {"k": "a"}}, {}, True),
    ("StringEqualsIgnoreCase", {"StringEqualsIgnoreCase": {"k": "ADMIN"}}, {"k": "admin"}, True),
    ("StringNotEqualsIgnoreCase", {"StringNotEqualsIgnoreCase": {"k": "ADMIN"}}, {"k": "admin"}, False),
    ("StringLike", {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/*"]}}, {"s3:prefix": "home/bob/docs"}, True),
    ("StringLike other user", {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}, {"s3:prefix": "home/alice/docs"}, False),
    ("StringLike ?", {"StringLike": {"k": "a?c"}}, {"k": "abc"}, True),
    ("StringNotLike", {"StringNotLike": {"k": "tmp/*"}}, {"k": "tmp/x"}, False),
    ("StringNotLike missing is true", {"StringNotLike": {"k": "tmp/*"}}, {}, True),
    ("StringEquals with variable", {"StringEquals": {"k": "${aws:username}"}}, {"k": "bob"}, True),
    # Numeric
    ("NumericLessThanEquals", {"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": 10}, True),
    ("NumericLessThanEquals over", {"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "11"}, False),
    ("NumericEquals", {"NumericEquals": {"n": 5}}, {"n": "5.0"}, True),
    ("NumericNotEquals", {"NumericNotEquals": {"n": 5}}, {"n": 6}, True),
    ("NumericLessThan", {"NumericLessThan": {"n": 5}}, {"n": 5}, False),
    ("NumericGreaterThan", {"NumericGreaterThan": {"n": 5}}, {"n": 6}, True),
    ("NumericGreaterThanEquals", {"NumericGreaterThanEquals": {"n": 5}}, {"n": 5}, True),
    ("Numeric of text is no match", {"NumericEquals": {"n": 5}}, {"n": "five"}, False),
    # Date (aws:CurrentTime is set from the clock: 2027-01-15T08:00:00Z)
    ("DateGreaterThan+DateLessThan window", {"DateGreaterThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}, "DateLessThan": {"aws:CurrentTime": "2027-12-31T23:59:59Z"}}, {}, True),
    ("DateLessThan passed", {"DateLessThan": {"aws:CurrentTime": "2026-06-30T00:00:00Z"}}, {}, False),
    ("Date epoch value", {"DateLessThan": {"aws:EpochTime": NOW + 1}}, {}, True),
    ("DateEquals date-only", {"DateEquals": {"d": "2027-01-15"}}, {"d": "2027-01-15T00:00:00Z"}, True),
    ("DateNotEquals", {"DateNotEquals": {"d": "2027-01-15"}}, {"d": "2027-01-16"}, True),
    ("DateLessThanEquals", {"DateLessThanEquals": {"d": "2027-01-15"}}, {"d": "2027-01-15"}, True),
    ("DateGreaterThanEquals", {"DateGreaterThanEquals": {"d": "2027-01-15"}}, {"d": "2027-01-14"}, False),
    # Bool / Null / Binary
    ("Bool", {"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True),
    ("Bool false", {"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "false"}, False),
    ("Null true: key absent", {"Null": {"aws:TokenIssueTime": "true"}}, {}, True),
    ("Null false: key present", {"Null": {"aws:TokenIssueTime": "false"}}, {}, False),
    ("BinaryEquals", {"BinaryEquals": {"k": "QmluYXJ5VmFsdWU="}}, {"k": "QmluYXJ5VmFsdWU="}, True),
    # IP
    ("IpAddress", {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]}}, {"aws:SourceIp": "203.0.113.9"}, True),
    ("IpAddress v6", {"IpAddress": {"aws:SourceIp": "2001:DB8:1234:5678::/64"}}, {"aws:SourceIp": "2001:db8:1234:5678::1"}, True),
    ("IpAddress outside", {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "198.51.100.1"}, False),
    ("IpAddress single host", {"IpAddress": {"aws:SourceIp": "203.0.113.9"}}, {"aws:SourceIp": "203.0.113.9"}, True),
    ("NotIpAddress", {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "198.51.100.1"}, True),
    ("IpAddress garbage", {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "nope"}, False),
    # ARN
    ("ArnLike", {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:topic-*"}}, {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic-a"}, True),
    ("ArnLike part stays", {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:t"}}, {"aws:SourceArn": "arn:aws:sns:a:b:123456789012:t"}, False),
    ("ArnEquals", {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:t"}}, {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:t"}, True),
    ("ArnNotEquals", {"ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:t"}}, {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:u"}, True),
    ("ArnNotLike", {"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}, {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:u"}, False),
    ("ArnLike is case-sensitive", {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:T"}}, {"aws:SourceArn": "arn:aws:sns:r:1:t"}, False),
    # IfExists
    ("StringEqualsIfExists missing", {"StringEqualsIfExists": {"ec2:InstanceType": "t2.micro"}}, {}, True),
    ("StringEqualsIfExists present", {"StringEqualsIfExists": {"ec2:InstanceType": "t2.micro"}}, {"ec2:InstanceType": "m5.large"}, False),
    ("NumericLessThanIfExists", {"NumericLessThanIfExists": {"n": 3}}, {"n": 2}, True),
    # Multivalued keys
    ("ForAllValues subset", {"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]}}, {"aws:TagKeys": ["env"]}, True),
    ("ForAllValues extra value", {"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]}}, {"aws:TagKeys": ["env", "cost"]}, False),
    ("ForAllValues missing key is true", {"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}, {}, True),
    ("ForAllValues empty is true", {"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}, {"aws:TagKeys": []}, True),
    ("ForAnyValue one hit", {"ForAnyValue:StringEquals": {"aws:TagKeys": ["env"]}}, {"aws:TagKeys": ["a", "env"]}, True),
    ("ForAnyValue none", {"ForAnyValue:StringEquals": {"aws:TagKeys": ["env"]}}, {"aws:TagKeys": ["a", "b"]}, False),
    ("ForAnyValue missing key is false", {"ForAnyValue:StringEquals": {"aws:TagKeys": ["env"]}}, {}, False),
    ("ForAnyValue:StringLike", {"ForAnyValue:StringLike": {"k": "dev-*"}}, {"k": ["prod", "dev-1"]}, True),
    ("ForAllValues:StringNotEquals", {"ForAllValues:StringNotEquals": {"k": ["secret"]}}, {"k": ["a", "b"]}, True),
    ("ForAllValues:StringNotEquals hit", {"ForAllValues:StringNotEquals": {"k": ["secret"]}}, {"k": ["a", "secret"]}, False),
    ("ForAnyValue:StringEqualsIfExists missing", {"ForAnyValue:StringEqualsIfExists": {"k": ["a"]}}, {}, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("condition", "context", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_condition(condition: dict[str, Any], context: dict[str, object], expected: bool) -> None:
    assert allowed([allow_if(condition)], "s3:ListBucket", RESOURCE, context) is expected


def test_deny_without_mfa_with_bool_if_exists() -> None:
    # AWS's example: deny unless MFA was used; a long-term key has no MFA key at all.
    policies = [
        doc({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        doc(
            {
                "Effect": "Deny",
                "Action": "iam:*",
                "Resource": "*",
                "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
            }
        ),
    ]
    assert not allowed(policies, "iam:CreateUser", "*")
    assert allowed(policies, "iam:CreateUser", "*", {"aws:MultiFactorAuthPresent": True})
    assert allowed(policies, "s3:GetObject", "*")


def test_deny_outside_ip_range() -> None:
    policies = [
        doc({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        doc(
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]}},
            }
        ),
    ]
    assert allowed(policies, "s3:GetObject", "*", {"aws:SourceIp": "192.0.2.10"})
    assert not allowed(policies, "s3:GetObject", "*", {"aws:SourceIp": "10.0.0.1"})


def test_principal_keys_cannot_be_overridden_by_the_request() -> None:
    policy = allow_if({"StringEquals": {"aws:username": "admin"}})
    assert not allowed([policy], "s3:GetObject", "*", {"aws:username": "admin"})
