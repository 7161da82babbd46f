"""IamDirectory: entities, durability across restarts, credential lookup and expiry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.unit.iam.conftest import ACCOUNT, ROOT, Directories, FakeClock

from lamina.errors import AccessDenied
from lamina.iam import (
    DeleteConflict,
    EntityAlreadyExists,
    IamDirectory,
    IamValidationError,
    LimitExceeded,
    MalformedPolicyDocument,
    NoSuchEntity,
    OwnerKind,
    PrincipalKind,
    Reason,
)


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


LAMBDA_TRUST = policy(
    {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
)
INVOKE_ALL = policy({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"})
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"


def test_root_key_is_the_account_root(directory: IamDirectory) -> None:
    credential = directory.lookup(ROOT.access_key_id)
    assert credential is not None and credential.secret == ROOT.secret_access_key
    assert credential.principal.kind is PrincipalKind.ROOT
    assert credential.principal.arn == f"arn:aws:iam::{ACCOUNT}:root"
    assert directory.lookup("AKIANOTAKEY") is None
    assert directory.authorize(credential.principal, "iam:DeleteRole", "*").reason is Reason.ROOT


async def test_user_key_signs_as_the_user(directory: IamDirectory) -> None:
    user = await directory.create_user("bob", "/team/")
    assert user.arn == f"arn:aws:iam::{ACCOUNT}:user/team/bob" and user.user_id.startswith("AIDA")
    key = await directory.create_access_key("bob")
    assert key.access_key_id.startswith("AKIA") and len(key.access_key_id) == 20
    credential = directory.lookup(key.access_key_id)
    assert credential is not None and credential.secret == key.secret
    assert credential.principal.arn == user.arn and credential.principal.name == "bob"
    assert directory.lookup_secret(key.access_key_id) == key.secret
    # A long-term key with a session token is refused, as AWS refuses it.
    assert directory.authenticate(key.access_key_id, None) is not None
    assert directory.authenticate(key.access_key_id, "token") is None
    await directory.delete_access_key(key.access_key_id, "bob")
    assert directory.lookup(key.access_key_id) is None


async def test_names_are_unique_regardless_of_case(directory: IamDirectory) -> None:
    await directory.create_user("Bob")
    with pytest.raises(EntityAlreadyExists, match=r"User with name bob already exists\."):
        await directory.create_user("bob")
    await directory.create_role("R", LAMBDA_TRUST)
    with pytest.raises(EntityAlreadyExists):
        await directory.create_role("r", LAMBDA_TRUST)


@pytest.mark.parametrize(
    ("name", "path"), [("has space", None), ("x" * 65, None), ("", None), ("ok", "no-slash")]
)
async def test_invalid_names_and_paths(
    directory: IamDirectory, name: str, path: str | None
) -> None:
    with pytest.raises(IamValidationError):
        await directory.create_user(name, path)
    assert directory.list_users() == []


async def test_two_keys_per_user(directory: IamDirectory) -> None:
    await directory.create_user("bob")
    await directory.create_access_key("bob")
    await directory.create_access_key("bob")
    with pytest.raises(LimitExceeded):
        await directory.create_access_key("bob")


async def test_delete_refuses_entities_still_in_use(directory: IamDirectory) -> None:
    await directory.create_user("bob")
    key = await directory.create_access_key("bob")
    with pytest.raises(DeleteConflict, match="must delete access keys first"):
        await directory.delete_user("bob")
    await directory.delete_access_key(key.access_key_id, "bob")
    await directory.put_inline_policy(OwnerKind.USER, "bob", "p", INVOKE_ALL)
    with pytest.raises(DeleteConflict, match="must delete policies first"):
        await directory.delete_user("bob")
    await directory.delete_inline_policy(OwnerKind.USER, "bob", "p")
    managed = await directory.create_policy("invoke", INVOKE_ALL)
    await directory.attach_policy(OwnerKind.USER, "bob", managed.arn)
    with pytest.raises(DeleteConflict, match="must detach all policies first"):
        await directory.delete_user("bob")
    with pytest.raises(DeleteConflict, match="attached to entities"):
        await directory.delete_policy(managed.arn)
    await directory.detach_policy(OwnerKind.USER, "bob", managed.arn)
    await directory.delete_policy(managed.arn)
    await directory.delete_user("bob")
    with pytest.raises(NoSuchEntity, match=r"The user with name bob cannot be found\."):
        directory.get_user("bob")


async def test_malformed_documents_change_nothing(directory: IamDirectory) -> None:
    with pytest.raises(MalformedPolicyDocument):
        await directory.create_role("r", "{}")
    assert directory.list_roles() == []
    await directory.create_role("r", LAMBDA_TRUST)
    with pytest.raises(MalformedPolicyDocument):
        await directory.put_inline_policy(OwnerKind.ROLE, "r", "p", "not json")
    assert directory.list_inline_policies(OwnerKind.ROLE, "r") == []


async def test_user_permissions_follow_inline_and_attached_policies(
    directory: IamDirectory,
) -> None:
    await directory.create_user("bob")
    key = await directory.create_access_key("bob")
    principal = directory.lookup(key.access_key_id).principal  # type: ignore[union-attr]
    assert not directory.authorize(principal, "lambda:InvokeFunction", FUNCTION).allowed
    await directory.put_inline_policy(OwnerKind.USER, "bob", "invoke", INVOKE_ALL)
    assert directory.authorize(principal, "lambda:InvokeFunction", FUNCTION).allowed
    deny = await directory.create_policy(
        "deny-f", policy({"Effect": "Deny", "Action": "lambda:*", "Resource": FUNCTION})
    )
    await directory.attach_policy(OwnerKind.USER, "bob", deny.arn)
    decision = directory.authorize(principal, "lambda:InvokeFunction", FUNCTION)
    assert not decision.allowed and decision.reason is Reason.IDENTITY_DENY
    assert decision.statement == deny.arn
    await directory.detach_policy(OwnerKind.USER, "bob", deny.arn)
    assert directory.authorize(principal, "lambda:InvokeFunction", FUNCTION).allowed


async def test_aws_managed_policies_can_be_attached(directory: IamDirectory) -> None:
    await directory.create_role("exec", LAMBDA_TRUST)
    basic = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    await directory.attach_policy(OwnerKind.ROLE, "exec", basic)
    assert [p.name for p in directory.list_attached(OwnerKind.ROLE, "exec")] == [
        "AWSLambdaBasicExecutionRole"
    ]
    with pytest.raises(NoSuchEntity, match="does not exist or is not attachable"):
        await directory.attach_policy(OwnerKind.ROLE, "exec", "arn:aws:iam::aws:policy/Nope")


async def test_state_survives_a_restart(directories: Directories, clock: FakeClock) -> None:
    first = await directories.open()
    await first.create_user("bob")
    key = await first.create_access_key("bob")
    await first.put_inline_policy(OwnerKind.USER, "bob", "invoke", INVOKE_ALL)
    role = await first.create_role("exec", LAMBDA_TRUST, description="d")
    managed = await first.create_policy("p", INVOKE_ALL, path="/x/")
    await first.attach_policy(OwnerKind.ROLE, "exec", managed.arn)
    await first.put_inline_policy(
        OwnerKind.USER,
        "bob",
        "assume",
        policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}),
    )
    await first.create_role(
        "assumable",
        policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}),
    )
    bob = first.lookup(key.access_key_id).principal  # type: ignore[union-attr]
    assumed = await first.issue_role_credentials(
        f"arn:aws:iam::{ACCOUNT}:role/assumable", "s1", 3600, caller=bob
    )
    service = await first.issue_role_credentials(role.arn, "fn", 3600, "lambda.amazonaws.com")

    second = await directories.open()
    assert second.get_user("bob").user_id == first.get_user("bob").user_id
    assert second.lookup_secret(key.access_key_id) == key.secret
    assert second.get_role("exec") == role
    assert second.get_policy(managed.arn) == managed
    assert [p.arn for p in second.list_attached(OwnerKind.ROLE, "exec")] == [managed.arn]
    restored = second.lookup(key.access_key_id).principal  # type: ignore[union-attr]
    assert second.authorize(restored, "lambda:InvokeFunction", FUNCTION).allowed
    # AssumeRole sessions are kept; a service's (an environment's) are not.
    assert second.lookup(assumed.access_key_id) is not None
    assert second.lookup(service.access_key_id) is None
    clock.advance(3600)
    third = await directories.open()
    assert third.lookup(assumed.access_key_id) is None


# -- role sessions -------------------------------------------------------------------


async def test_service_credentials_for_an_execution_role(
    directory: IamDirectory, clock: FakeClock
) -> None:
    role = await directory.create_role("exec", LAMBDA_TRUST)
    await directory.put_inline_policy(OwnerKind.ROLE, "exec", "invoke", INVOKE_ALL)
    assert directory.role_trusts_service(role.arn, "lambda.amazonaws.com")
    assert not directory.role_trusts_service(role.arn, "states.amazonaws.com")
    assert not directory.role_trusts_service(
        f"arn:aws:iam::{ACCOUNT}:role/none", "lambda.amazonaws.com"
    )

    creds = await directory.issue_role_credentials(role.arn, "my-fn", 900, "lambda.amazonaws.com")
    assert creds.access_key_id.startswith("ASIA")
    assert creds.expiration.timestamp() == clock.now + 900
    principal = creds.principal
    assert principal.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/exec/my-fn"
    assert principal.kind is PrincipalKind.ASSUMED_ROLE
    assert principal.user_id == f"{role.role_id}:my-fn"
    # The session's permissions are the role's.
    assert directory.authorize(principal, "lambda:InvokeFunction", FUNCTION).allowed
    assert not directory.authorize(principal, "iam:CreateUser", "*").allowed
    # It needs its session token, and stops working when it expires.
    assert directory.authenticate(creds.access_key_id, creds.session_token) is not None
    assert directory.authenticate(creds.access_key_id, None) is None
    assert directory.authenticate(creds.access_key_id, creds.session_token + "x") is None
    clock.advance(899)
    assert directory.lookup_secret(creds.access_key_id) == creds.secret
    assert not directory.expired(creds.access_key_id)
    clock.advance(1)
    assert directory.lookup(creds.access_key_id) is None
    assert directory.lookup_secret(creds.access_key_id) is None
    assert directory.expired(creds.access_key_id)
    assert not directory.expired("ASIAUNKNOWN")
    # Lambda names sessions after functions, which may be one character long.
    short = await directory.issue_role_credentials(role.arn, "f", 900, "lambda.amazonaws.com")
    assert short.principal.session_name == "f"


async def test_expired_sessions_are_forgotten_as_new_ones_are_issued(
    directory: IamDirectory, clock: FakeClock
) -> None:
    role = await directory.create_role("exec", LAMBDA_TRUST)
    doomed = await directory.create_role("doomed", LAMBDA_TRUST)

    async def issue(arn: str, seconds: int) -> str:
        creds = await directory.issue_role_credentials(arn, "fn", seconds, "lambda.amazonaws.com")
        return creds.access_key_id

    short = [await issue(role.arn, 900) for _ in range(3)]
    long = [await issue(role.arn, 3600) for _ in range(3)]
    gone_with_role = await issue(doomed.arn, 900)
    await directory.delete_role("doomed")  # its sessions go now, their expiries later
    clock.advance(1000)
    # Expired, and still known as expired until the next issue prunes them.
    assert all(directory.expired(key) for key in short)
    fresh = await issue(role.arn, 900)
    assert not any(directory.expired(key) for key in short)  # forgotten: unknown now
    assert all(directory.lookup(key) is None for key in [*short, gone_with_role])
    assert all(directory.lookup(key) is not None for key in [*long, fresh])
    clock.advance(3000)
    await issue(role.arn, 900)
    assert all(directory.lookup(key) is None for key in [*long, fresh])


async def test_untrusted_service_is_refused(directory: IamDirectory) -> None:
    role = await directory.create_role("exec", LAMBDA_TRUST)
    with pytest.raises(AccessDenied) as caught:
        await directory.issue_role_credentials(role.arn, "sess", 900, "states.amazonaws.com")
    assert caught.value.message == (
        f"User: states.amazonaws.com is not authorized to perform: sts:AssumeRole on resource: {role.arn}"
    )


def _trusting(principal: str) -> str:
    return policy({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"})


ALLOW_ASSUME = policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})


@pytest.mark.parametrize(
    ("trusted", "identity_allows", "expected"),
    [
        ("bob", False, False),  # trusted but not allowed by bob's policies
        ("alice", True, False),  # allowed but not trusted
        ("bob", True, True),
        ("account", True, True),  # the account principal trusts every user who is allowed
        ("account", False, False),
    ],
)
async def test_assume_role_needs_trust_and_permission(
    directory: IamDirectory, trusted: str, identity_allows: bool, expected: bool
) -> None:
    for name in ("bob", "alice"):
        await directory.create_user(name)
    key = await directory.create_access_key("bob")
    bob = directory.lookup(key.access_key_id).principal  # type: ignore[union-attr]
    principal = ACCOUNT if trusted == "account" else directory.get_user(trusted).arn
    role = await directory.create_role("target", _trusting(principal))
    if identity_allows:
        await directory.put_inline_policy(OwnerKind.USER, "bob", "assume", ALLOW_ASSUME)
    if expected:
        creds = await directory.issue_role_credentials(role.arn, "sess", 900, caller=bob)
        assert creds.principal.arn.endswith(":assumed-role/target/sess")
    else:
        with pytest.raises(AccessDenied, match="is not authorized to perform: sts:AssumeRole"):
            await directory.issue_role_credentials(role.arn, "sess", 900, caller=bob)


async def test_trust_policy_deny_and_conditions(directory: IamDirectory) -> None:
    await directory.create_user("bob")
    await directory.put_inline_policy(OwnerKind.USER, "bob", "assume", ALLOW_ASSUME)
    bob = directory.lookup((await directory.create_access_key("bob")).access_key_id).principal  # type: ignore[union-attr]
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ACCOUNT},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "42"}},
        }
    )
    role = await directory.create_role("ext", trust)
    with pytest.raises(AccessDenied):
        await directory.issue_role_credentials(role.arn, "sess", 900, caller=bob)
    ok = await directory.issue_role_credentials(
        role.arn, "sess", 900, caller=bob, context={"sts:ExternalId": "42"}
    )
    assert ok.principal.session_name == "sess"
    denied = await directory.create_role(
        "denied",
        policy(
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"},
            {"Effect": "Deny", "Principal": {"AWS": bob.arn}, "Action": "sts:AssumeRole"},
        ),
    )
    with pytest.raises(AccessDenied):
        await directory.issue_role_credentials(denied.arn, "sess", 900, caller=bob)


async def test_session_durations(directory: IamDirectory) -> None:
    role = await directory.create_role("r", _trusting(ACCOUNT), max_session_duration=7200)
    root = directory.root_principal
    with pytest.raises(IamValidationError, match="greater than or equal to 900"):
        await directory.issue_role_credentials(role.arn, "sess", 899, caller=root)
    with pytest.raises(IamValidationError, match="exceeds the MaxSessionDuration"):
        await directory.issue_role_credentials(role.arn, "sess", 7201, caller=root)
    long = await directory.issue_role_credentials(role.arn, "sess", 7200, caller=root)
    await directory.put_inline_policy(OwnerKind.ROLE, "r", "assume", ALLOW_ASSUME)
    # Role chaining: a session taking a role gets at most an hour.
    with pytest.raises(IamValidationError):
        await directory.issue_role_credentials(role.arn, "s2", 3601, caller=long.principal)
    chained = await directory.issue_role_credentials(role.arn, "s2", 3600, caller=long.principal)
    assert chained.principal.arn.endswith("/r/s2")
    with pytest.raises(IamValidationError, match="roleSessionName"):
        await directory.issue_role_credentials(role.arn, "x", 900, caller=root)


async def test_deleting_a_role_ends_its_sessions(directory: IamDirectory) -> None:
    role = await directory.create_role("r", _trusting(ACCOUNT))
    creds = await directory.issue_role_credentials(
        role.arn, "sess", 900, caller=directory.root_principal
    )
    await directory.delete_role("r")
    await directory.create_role("r", _trusting(ACCOUNT))
    assert directory.lookup(creds.access_key_id) is None


async def test_missing_role_is_access_denied(directory: IamDirectory) -> None:
    with pytest.raises(AccessDenied):
        await directory.issue_role_credentials(
            f"arn:aws:iam::{ACCOUNT}:role/none", "sess", 900, caller=directory.root_principal
        )
