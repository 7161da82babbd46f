"""Refusing a request the way AWS words it.

A service maps its operation to an IAM action and resource ARN (see docs/iam.md),
then calls `Authorizer.check`; a refusal is 403 with AWS's message, which names the
caller, the action, the resource and whether a policy denied it or none allowed it.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.errors import AccessDenied
from lamina.iam.directory import IamDirectory
from lamina.iam.evaluation import Decision, Reason
from lamina.iam.model import Principal
from lamina.iam.policy import PolicyDocument

_ENDINGS = {
    Reason.IDENTITY_DENY: "with an explicit deny in an identity-based policy",
    Reason.RESOURCE_DENY: "with an explicit deny in a resource-based policy",
}


def denial_message(principal: Principal, action: str, resource: str, decision: Decision) -> str:
    ending = _ENDINGS.get(
        decision.reason, f"because no identity-based policy allows the {action} action"
    )
    return f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource} {ending}"


class Authorizer:
    """Checks requests against the directory's policies; raises on refusal.

    `code` is the error code of the caller's API: Lambda and most JSON services say
    `AccessDeniedException`, IAM and STS (query protocol) say `AccessDenied`.
    """

    def __init__(self, directory: IamDirectory, *, code: str = "AccessDeniedException") -> None:
        self._directory = directory
        self._code = code

    async def check(
        self,
        principal: Principal,
        action: str,
        resource_arn: str,
        context: Mapping[str, object] | None = None,
        *,
        resource_policy: str | Mapping[str, object] | PolicyDocument | None = None,
    ) -> None:
        decision = self._directory.authorize(
            principal, action, resource_arn, context, resource_policy
        )
        if not decision.allowed:
            raise AccessDenied(
                denial_message(principal, action, resource_arn, decision), code=self._code
            )
