"""Authorizer: AWS's wording for each way a request is refused."""

from __future__ import annotations

import json

import pytest
from tests.unit.iam.conftest import ACCOUNT

from lamina.errors import AccessDenied
from lamina.iam import Authorizer, IamDirectory, OwnerKind, PolicyKind, Principal

FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"
PREFIX = (
    f"User: arn:aws:iam::{ACCOUNT}:user/bob is not authorized to perform: "
    f"lambda:InvokeFunction on resource: {FUNCTION}"
)


def statement(effect: str, **extra: object) -> dict[str, object]:
    return {"Effect": effect, "Action": "lambda:InvokeFunction", "Resource": FUNCTION, **extra}


def document(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
async def bob(directory: IamDirectory) -> Principal:
    await directory.create_user("bob")
    key = await directory.create_access_key("bob")
    credential = directory.lookup(key.access_key_id)
    assert credential is not None
    return credential.principal


async def refusal(
    authorizer: Authorizer, who: Principal, resource_policy: str | None = None
) -> AccessDenied:
    with pytest.raises(AccessDenied) as caught:
        await authorizer.check(
            who, "lambda:InvokeFunction", FUNCTION, {}, resource_policy=resource_policy
        )
    return caught.value


async def test_messages(directory: IamDirectory, bob: Principal) -> None:
    authorizer = Authorizer(directory)
    implicit = await refusal(authorizer, bob)
    assert implicit.code == "AccessDeniedException" and implicit.status == 403
    assert implicit.message == (
        f"{PREFIX} because no identity-based policy allows the lambda:InvokeFunction action"
    )
    await directory.put_inline_policy(OwnerKind.USER, "bob", "p", document(statement("Allow")))
    await authorizer.check(bob, "lambda:InvokeFunction", FUNCTION)
    resource_deny = document(statement("Deny", Principal="*"))
    denied_by_resource = await refusal(authorizer, bob, resource_policy=resource_deny)
    assert (
        denied_by_resource.message == f"{PREFIX} with an explicit deny in a resource-based policy"
    )
    await directory.put_inline_policy(OwnerKind.USER, "bob", "d", document(statement("Deny")))
    explicit = await refusal(authorizer, bob)
    assert explicit.message == f"{PREFIX} with an explicit deny in an identity-based policy"


async def test_resource_policy_alone_can_allow(directory: IamDirectory, bob: Principal) -> None:
    policy = document(statement("Allow", Principal={"AWS": bob.arn}))
    await Authorizer(directory).check(
        bob, "lambda:InvokeFunction", FUNCTION, resource_policy=policy
    )
    parsed = directory.parse_policy(policy, PolicyKind.RESOURCE)
    await Authorizer(directory).check(
        bob, "lambda:InvokeFunction", FUNCTION, resource_policy=parsed
    )


async def test_root_is_never_refused(directory: IamDirectory) -> None:
    deny_all = document({"Effect": "Deny", "Principal": "*", "Action": "*"})
    await Authorizer(directory).check(
        directory.root_principal, "lambda:DeleteFunction", FUNCTION, resource_policy=deny_all
    )
