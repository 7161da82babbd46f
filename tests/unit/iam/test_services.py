"""IamService and StsService called directly, through the query protocol and
botocore's own parser: what a boto3 client would read, without a server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import botocore.session
import pytest
from tests.unit.iam.conftest import ACCOUNT, ROOT, FakeClock

from lamina.errors import LaminaError
from lamina.iam import IamDirectory, OwnerKind
from lamina.protocols.context import RequestContext, ServiceHandler
from lamina.protocols.query import QueryProtocol
from lamina.protocols.testing import read_response, wire_request
from lamina.services.iam import IamService, principal_lookup
from lamina.services.sts import StsService

TRUST_ACCOUNT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
        ],
    }
)
INVOKE = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}],
    }
)


@dataclass
class Api:
    """One service behind its wire protocol, called as `access_key_id`."""

    name: str
    handler: ServiceHandler
    protocol: QueryProtocol
    model: Any

    async def __call__(self, access_key_id: str, operation: str, **params: Any) -> Any:
        request = wire_request(self.model, operation, params)
        parsed = self.protocol.parse_request(request)
        ctx = RequestContext(
            request_id="req-1",
            access_key_id=access_key_id,
            account_id=ACCOUNT,
            region="us-east-1",
            service=self.name,
            operation=operation,
            headers=request.headers,
            source_ip="127.0.0.1",
        )
        try:
            output = await self.handler(parsed.operation, parsed.params, ctx)
            response = self.protocol.serialize_response(operation, output, "req-1")
        except LaminaError as error:
            response = self.protocol.serialize_error(error, "req-1")
        return read_response(self.model, operation, response)


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    session = botocore.session.get_session()
    return {name: session.get_service_model(name) for name in ("iam", "sts")}


@pytest.fixture
def iam(directory: IamDirectory, models: dict[str, Any]) -> Api:
    service = IamService(directory, principal_lookup(directory))
    return Api("iam", service, QueryProtocol(models["iam"]), models["iam"])


@pytest.fixture
def sts(directory: IamDirectory, models: dict[str, Any]) -> Api:
    service = StsService(directory, principal_lookup(directory))
    return Api("sts", service, QueryProtocol(models["sts"]), models["sts"])


def error_of(response: Any) -> tuple[int, str, str]:
    error = response["Error"]
    return response["ResponseMetadata"]["HTTPStatusCode"], error["Code"], error["Message"]


ROOT_KEY = ROOT.access_key_id


async def test_users_and_keys(iam: Api, clock: FakeClock) -> None:
    created = await iam(ROOT_KEY, "CreateUser", UserName="bob", Path="/dev/")
    user = created["User"]
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/dev/bob" and user["Path"] == "/dev/"
    assert isinstance(user["CreateDate"], datetime)
    assert user["CreateDate"].timestamp() == clock.now
    assert (await iam(ROOT_KEY, "GetUser", UserName="bob"))["User"] == user
    assert [u["UserName"] for u in (await iam(ROOT_KEY, "ListUsers"))["Users"]] == ["bob"]

    key = (await iam(ROOT_KEY, "CreateAccessKey", UserName="bob"))["AccessKey"]
    assert key["Status"] == "Active" and key["SecretAccessKey"]
    listed = (await iam(ROOT_KEY, "ListAccessKeys", UserName="bob"))["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    assert "SecretAccessKey" not in listed[0]
    # Even about itself, a user may only do what its policies allow.
    own = await iam(key["AccessKeyId"], "GetUser")
    assert error_of(own)[1] == "AccessDenied"
    await iam(ROOT_KEY, "DeleteAccessKey", UserName="bob", AccessKeyId=key["AccessKeyId"])
    await iam(ROOT_KEY, "DeleteUser", UserName="bob")
    assert (await iam(ROOT_KEY, "ListUsers"))["Users"] == []


async def test_errors_are_iams(iam: Api) -> None:
    assert error_of(await iam(ROOT_KEY, "GetUser", UserName="nobody")) == (
        404,
        "NoSuchEntity",
        "The user with name nobody cannot be found.",
    )
    await iam(ROOT_KEY, "CreateUser", UserName="bob")
    assert error_of(await iam(ROOT_KEY, "CreateUser", UserName="bob"))[:2] == (
        409,
        "EntityAlreadyExists",
    )
    bad = await iam(ROOT_KEY, "CreateRole", RoleName="r", AssumeRolePolicyDocument="{")
    assert error_of(bad) == (400, "MalformedPolicyDocument", "Syntax errors in policy.")
    identity = await iam(ROOT_KEY, "CreateRole", RoleName="r", AssumeRolePolicyDocument=INVOKE)
    assert error_of(identity)[2] == "Missing required field Principal"
    await iam(ROOT_KEY, "CreateAccessKey", UserName="bob")
    assert error_of(await iam(ROOT_KEY, "DeleteUser", UserName="bob"))[:2] == (
        409,
        "DeleteConflict",
    )
    assert error_of(await iam(ROOT_KEY, "CreateUser", UserName="a b"))[:2] == (
        400,
        "ValidationError",
    )


async def test_roles_and_policy_documents_go_out_url_encoded(iam: Api) -> None:
    role = (
        await iam(
            ROOT_KEY,
            "CreateRole",
            RoleName="exec",
            AssumeRolePolicyDocument=TRUST_ACCOUNT,
            Description="runs f",
            MaxSessionDuration=7200,
        )
    )["Role"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/exec" and role["RoleId"].startswith("AROA")
    assert role["AssumeRolePolicyDocument"].startswith("%7B")
    assert unquote(role["AssumeRolePolicyDocument"]) == TRUST_ACCOUNT
    assert role["Description"] == "runs f" and role["MaxSessionDuration"] == 7200
    assert (await iam(ROOT_KEY, "GetRole", RoleName="exec"))["Role"] == role
    assert [r["RoleName"] for r in (await iam(ROOT_KEY, "ListRoles"))["Roles"]] == ["exec"]

    await iam(ROOT_KEY, "PutRolePolicy", RoleName="exec", PolicyName="inv", PolicyDocument=INVOKE)
    got = await iam(ROOT_KEY, "GetRolePolicy", RoleName="exec", PolicyName="inv")
    assert got["RoleName"] == "exec" and got["PolicyName"] == "inv"
    assert unquote(got["PolicyDocument"]) == INVOKE
    await iam(ROOT_KEY, "DeleteRolePolicy", RoleName="exec", PolicyName="inv")
    missing = await iam(ROOT_KEY, "GetRolePolicy", RoleName="exec", PolicyName="inv")
    assert error_of(missing)[:2] == (404, "NoSuchEntity")
    await iam(ROOT_KEY, "DeleteRole", RoleName="exec")
    assert error_of(await iam(ROOT_KEY, "GetRole", RoleName="exec"))[0] == 404


async def test_managed_policies_and_attachments(iam: Api) -> None:
    await iam(ROOT_KEY, "CreateRole", RoleName="exec", AssumeRolePolicyDocument=TRUST_ACCOUNT)
    await iam(ROOT_KEY, "CreateUser", UserName="bob")
    policy = (
        await iam(
            ROOT_KEY, "CreatePolicy", PolicyName="invoke", PolicyDocument=INVOKE, Description="d"
        )
    )["Policy"]
    arn = f"arn:aws:iam::{ACCOUNT}:policy/invoke"
    assert policy["Arn"] == arn and policy["DefaultVersionId"] == "v1"
    assert policy["AttachmentCount"] == 0 and policy["IsAttachable"] is True
    await iam(ROOT_KEY, "AttachRolePolicy", RoleName="exec", PolicyArn=arn)
    await iam(ROOT_KEY, "AttachUserPolicy", UserName="bob", PolicyArn=arn)
    assert (await iam(ROOT_KEY, "GetPolicy", PolicyArn=arn))["Policy"]["AttachmentCount"] == 2
    attached = await iam(ROOT_KEY, "ListAttachedRolePolicies", RoleName="exec")
    assert attached["AttachedPolicies"] == [{"PolicyName": "invoke", "PolicyArn": arn}]
    assert error_of(await iam(ROOT_KEY, "DeletePolicy", PolicyArn=arn))[1] == "DeleteConflict"
    await iam(ROOT_KEY, "DetachRolePolicy", RoleName="exec", PolicyArn=arn)
    await iam(ROOT_KEY, "DetachUserPolicy", UserName="bob", PolicyArn=arn)
    await iam(ROOT_KEY, "DeletePolicy", PolicyArn=arn)
    assert error_of(await iam(ROOT_KEY, "GetPolicy", PolicyArn=arn))[:2] == (404, "NoSuchEntity")
    nope = await iam(ROOT_KEY, "AttachRolePolicy", RoleName="exec", PolicyArn=arn)
    assert error_of(nope)[2] == f"Policy {arn} does not exist or is not attachable."


async def test_iam_calls_are_authorised(iam: Api, directory: IamDirectory) -> None:
    await iam(ROOT_KEY, "CreateUser", UserName="bob")
    await iam(ROOT_KEY, "CreateUser", UserName="alice")
    key = (await iam(ROOT_KEY, "CreateAccessKey", UserName="bob"))["AccessKey"]["AccessKeyId"]
    denied = await iam(key, "CreateUser", UserName="eve")
    assert error_of(denied) == (
        403,
        "AccessDenied",
        f"User: arn:aws:iam::{ACCOUNT}:user/bob is not authorized to perform: iam:CreateUser "
        f"on resource: arn:aws:iam::{ACCOUNT}:user/eve because no identity-based policy "
        "allows the iam:CreateUser action",
    )
    # AWS's "manage your own access keys" example, with ${aws:username}.
    own_keys = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["iam:*AccessKey*", "iam:GetUser"],
                    "Resource": f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}",
                }
            ],
        }
    )
    await directory.put_inline_policy(OwnerKind.USER, "bob", "own-keys", own_keys)
    assert (await iam(key, "GetUser"))["User"]["UserName"] == "bob"
    assert len((await iam(key, "ListAccessKeys"))["AccessKeyMetadata"]) == 1
    assert error_of(await iam(key, "ListAccessKeys", UserName="alice"))[0] == 403
    assert error_of(await iam(key, "CreateAccessKey", UserName="alice"))[0] == 403


async def test_get_caller_identity(iam: Api, sts: Api) -> None:
    root = await sts(ROOT_KEY, "GetCallerIdentity")
    assert (root["Account"], root["Arn"], root["UserId"]) == (
        ACCOUNT,
        f"arn:aws:iam::{ACCOUNT}:root",
        ACCOUNT,
    )
    user = (await iam(ROOT_KEY, "CreateUser", UserName="bob"))["User"]
    key = (await iam(ROOT_KEY, "CreateAccessKey", UserName="bob"))["AccessKey"]["AccessKeyId"]
    bob = await sts(key, "GetCallerIdentity")
    assert (bob["Arn"], bob["UserId"]) == (user["Arn"], user["UserId"])


async def test_assume_role(iam: Api, sts: Api, directory: IamDirectory, clock: FakeClock) -> None:
    role = (
        await iam(ROOT_KEY, "CreateRole", RoleName="worker", AssumeRolePolicyDocument=TRUST_ACCOUNT)
    )["Role"]
    await iam(ROOT_KEY, "PutRolePolicy", RoleName="worker", PolicyName="i", PolicyDocument=INVOKE)
    out = await sts(ROOT_KEY, "AssumeRole", RoleArn=role["Arn"], RoleSessionName="job-1")
    creds, assumed = out["Credentials"], out["AssumedRoleUser"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SessionToken"]
    assert creds["Expiration"].timestamp() == clock.now + 3600
    assert assumed == {
        "AssumedRoleId": f"{role['RoleId']}:job-1",
        "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/job-1",
    }
    me = await sts(creds["AccessKeyId"], "GetCallerIdentity")
    assert me["Arn"] == assumed["Arn"] and me["UserId"] == assumed["AssumedRoleId"]
    # The session has the role's permissions, not more.
    denied = await iam(creds["AccessKeyId"], "ListUsers")
    assert error_of(denied)[2].startswith(f"User: {assumed['Arn']} is not authorized")


async def test_assume_role_refusals(iam: Api, sts: Api) -> None:
    await iam(ROOT_KEY, "CreateUser", UserName="bob")
    key = (await iam(ROOT_KEY, "CreateAccessKey", UserName="bob"))["AccessKey"]["AccessKeyId"]
    role = (
        await iam(ROOT_KEY, "CreateRole", RoleName="worker", AssumeRolePolicyDocument=TRUST_ACCOUNT)
    )["Role"]
    refused = await sts(key, "AssumeRole", RoleArn=role["Arn"], RoleSessionName="bob-1")
    assert error_of(refused) == (
        403,
        "AccessDenied",
        f"User: arn:aws:iam::{ACCOUNT}:user/bob is not authorized to perform: sts:AssumeRole "
        f"on resource: {role['Arn']}",
    )
    session_policy = await sts(
        ROOT_KEY, "AssumeRole", RoleArn=role["Arn"], RoleSessionName="s1", Policy=INVOKE
    )
    assert error_of(session_policy)[:2] == (400, "ValidationError")
    too_long = await sts(
        ROOT_KEY, "AssumeRole", RoleArn=role["Arn"], RoleSessionName="s1", DurationSeconds=7200
    )
    assert "MaxSessionDuration" in error_of(too_long)[2]


async def test_update_assume_role_policy(iam: Api, sts: Api) -> None:
    lambda_only = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    role = (await iam(ROOT_KEY, "CreateRole", RoleName="r", AssumeRolePolicyDocument=lambda_only))[
        "Role"
    ]
    refused = await sts(ROOT_KEY, "AssumeRole", RoleArn=role["Arn"], RoleSessionName="s1")
    assert error_of(refused)[:2] == (403, "AccessDenied")
    await iam(ROOT_KEY, "UpdateAssumeRolePolicy", RoleName="r", PolicyDocument=TRUST_ACCOUNT)
    got = (await iam(ROOT_KEY, "GetRole", RoleName="r"))["Role"]
    assert unquote(got["AssumeRolePolicyDocument"]) == TRUST_ACCOUNT
    assert "Credentials" in await sts(
        ROOT_KEY, "AssumeRole", RoleArn=role["Arn"], RoleSessionName="s1"
    )
    bad = await iam(ROOT_KEY, "UpdateAssumeRolePolicy", RoleName="r", PolicyDocument=INVOKE)
    assert error_of(bad)[:2] == (400, "MalformedPolicyDocument")
