"""IAM API (botocore model `iam`, query protocol) over the `IamDirectory`.

Each operation is authorised as `iam:<Operation>` on the entity it touches (a user,
role or policy ARN), then parses its members, calls the directory and renders the
output members botocore's model names. Policy documents go out URL-encoded, as IAM
sends them (boto3 decodes them back into dicts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from lamina.errors import AccessDenied, LaminaError
from lamina.iam import Authorizer, IamDirectory, OwnerKind, Principal, PrincipalKind
from lamina.iam.errors import IamValidationError
from lamina.iam.model import AccessKey, ManagedPolicy, Role, User
from lamina.iam.names import entity_arn
from lamina.protocols.context import RequestContext

PrincipalOf = Callable[[RequestContext], Principal]
Operation = Callable[[dict[str, Any], RequestContext, Principal], Awaitable[dict[str, Any]]]
# (params, ctx, caller) -> the ARN the operation acts on, for authorisation
ResourceOf = Callable[[dict[str, Any], RequestContext, Principal], str]


def principal_lookup(directory: IamDirectory) -> PrincipalOf:
    """`principal_of` for requests the SigV4 verifier already accepted."""

    def principal_of(ctx: RequestContext) -> Principal:
        credential = directory.lookup(ctx.access_key_id)
        if credential is None:  # deleted or expired between verification and now
            raise AccessDenied(
                "The security token included in the request is invalid.",
                code="InvalidClientTokenId",
            )
        return credential.principal

    return principal_of


def request_conditions(ctx: RequestContext) -> dict[str, object]:
    """The global condition keys the wire knows about a request."""
    conditions: dict[str, object] = {"aws:RequestedRegion": ctx.region}
    if ctx.source_ip:
        conditions["aws:SourceIp"] = ctx.source_ip
    return conditions


def _required(params: dict[str, Any], member: str) -> Any:
    value = params.get(member)
    if value is None or value == "":
        raise IamValidationError(
            f"1 validation error detected: Value null at '{member[0].lower()}{member[1:]}' "
            "failed to satisfy constraint: Member must not be null"
        )
    return value


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _document(text: str) -> str:
    return quote(text, safe="")


def _user_out(user: User) -> dict[str, Any]:
    return {
        "Path": user.path,
        "UserName": user.name,
        "UserId": user.user_id,
        "Arn": user.arn,
        "CreateDate": _time(user.created),
    }


def _role_out(role: Role) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Path": role.path,
        "RoleName": role.name,
        "RoleId": role.role_id,
        "Arn": role.arn,
        "CreateDate": _time(role.created),
        "AssumeRolePolicyDocument": _document(role.trust_policy),
        "MaxSessionDuration": role.max_session_duration,
    }
    if role.description:
        out["Description"] = role.description
    return out


def _key_out(key: AccessKey, *, secret: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "UserName": key.user_name,
        "AccessKeyId": key.access_key_id,
        "Status": key.status,
        "CreateDate": _time(key.created),
    }
    if secret:
        out["SecretAccessKey"] = key.secret
    return out


def _policy_out(policy: ManagedPolicy, attachments: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "PolicyName": policy.name,
        "PolicyId": policy.policy_id,
        "Arn": policy.arn,
        "Path": policy.path,
        "DefaultVersionId": policy.default_version_id,
        "AttachmentCount": attachments,
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": True,
        "CreateDate": _time(policy.created),
        "UpdateDate": _time(policy.updated),
    }
    if policy.description:
        out["Description"] = policy.description
    return out


class IamService:
    """The IAM operations lamina serves; `principal_of` says who called."""

    def __init__(self, directory: IamDirectory, principal_of: PrincipalOf) -> None:
        self._directory = directory
        self._principal_of = principal_of
        self._authorizer = Authorizer(directory, code="AccessDenied")
        d = directory
        user, role, policy = self._user_arn, self._role_arn, self._policy_arn
        self._operations: dict[str, tuple[ResourceOf, Operation]] = {
            "CreateUser": (user, self._create_user),
            "GetUser": (user, self._get_user),
            "DeleteUser": (user, self._delete_user),
            "ListUsers": (lambda p, c, _: f"arn:aws:iam::{d.account_id}:user/*", self._list_users),
            "CreateAccessKey": (user, self._create_access_key),
            "DeleteAccessKey": (user, self._delete_access_key),
            "ListAccessKeys": (user, self._list_access_keys),
            "CreateRole": (role, self._create_role),
            "GetRole": (role, self._get_role),
            "DeleteRole": (role, self._delete_role),
            "UpdateAssumeRolePolicy": (role, self._update_trust),
            "ListRoles": (lambda p, c, _: f"arn:aws:iam::{d.account_id}:role/*", self._list_roles),
            "PutRolePolicy": (role, self._put_inline(OwnerKind.ROLE)),
            "GetRolePolicy": (role, self._get_inline(OwnerKind.ROLE)),
            "DeleteRolePolicy": (role, self._delete_inline(OwnerKind.ROLE)),
            "ListRolePolicies": (role, self._list_inline(OwnerKind.ROLE)),
            "PutUserPolicy": (user, self._put_inline(OwnerKind.USER)),
            "GetUserPolicy": (user, self._get_inline(OwnerKind.USER)),
            "DeleteUserPolicy": (user, self._delete_inline(OwnerKind.USER)),
            "ListUserPolicies": (user, self._list_inline(OwnerKind.USER)),
            "CreatePolicy": (policy, self._create_policy),
            "GetPolicy": (policy, self._get_policy),
            "DeletePolicy": (policy, self._delete_policy),
            "AttachRolePolicy": (role, self._attach(OwnerKind.ROLE)),
            "DetachRolePolicy": (role, self._detach(OwnerKind.ROLE)),
            "AttachUserPolicy": (user, self._attach(OwnerKind.USER)),
            "DetachUserPolicy": (user, self._detach(OwnerKind.USER)),
            "ListAttachedRolePolicies": (role, self._list_attached(OwnerKind.ROLE)),
            "ListAttachedUserPolicies": (user, self._list_attached(OwnerKind.USER)),
        }

    async def __call__(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        entry = self._operations.get(operation)
        if entry is None:
            raise LaminaError(
                f"lamina's IAM does not implement {operation}.",
                code="UnknownOperationException",
                status=400,
            )
        resource_of, run = entry
        caller = self._principal_of(ctx)
        resource = resource_of(params, ctx, caller)
        await self._authorizer.check(caller, f"iam:{operation}", resource, request_conditions(ctx))
        return await run(params, ctx, caller)

    # -- what each operation acts on -----------------------------------------------------

    def _user_name(self, params: dict[str, Any], caller: Principal) -> str:
        """`UserName`, or the caller's own user where IAM lets it be left out."""
        name = params.get("UserName")
        if name:
            return str(name)
        if caller.kind is PrincipalKind.USER:
            return caller.name
        raise IamValidationError("Must specify userName when calling with non-User credentials")

    def _user_arn(self, params: dict[str, Any], _ctx: RequestContext, caller: Principal) -> str:
        name = self._user_name(params, caller)
        user = self._directory.find_user(name)
        path = user.path if user is not None else (params.get("Path") or "/")
        return entity_arn(self._directory.account_id, "user", path, name)

    def _role_arn(self, params: dict[str, Any], _ctx: RequestContext, _caller: Principal) -> str:
        name = str(_required(params, "RoleName"))
        role = next(
            (r for r in self._directory.list_roles() if r.name.lower() == name.lower()), None
        )
        path = role.path if role is not None else (params.get("Path") or "/")
        return entity_arn(self._directory.account_id, "role", path, name)

    def _policy_arn(self, params: dict[str, Any], _ctx: RequestContext, _caller: Principal) -> str:
        if "PolicyArn" in params:
            return str(params["PolicyArn"])
        name = str(_required(params, "PolicyName"))
        return entity_arn(self._directory.account_id, "policy", params.get("Path") or "/", name)

    # -- users and keys ------------------------------------------------------------------

    async def _create_user(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        user = await self._directory.create_user(_required(p, "UserName"), p.get("Path"))
        return {"User": _user_out(user)}

    async def _get_user(
        self, p: dict[str, Any], _c: RequestContext, w: Principal
    ) -> dict[str, Any]:
        return {"User": _user_out(self._directory.get_user(self._user_name(p, w)))}

    async def _delete_user(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        await self._directory.delete_user(_required(p, "UserName"))
        return {}

    async def _list_users(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        users = self._directory.list_users(p.get("PathPrefix") or "/")
        return {"Users": [_user_out(u) for u in users], "IsTruncated": False}

    async def _create_access_key(
        self, p: dict[str, Any], _c: RequestContext, w: Principal
    ) -> dict[str, Any]:
        key = await self._directory.create_access_key(self._user_name(p, w))
        return {"AccessKey": _key_out(key, secret=True)}

    async def _delete_access_key(
        self, p: dict[str, Any], _c: RequestContext, w: Principal
    ) -> dict[str, Any]:
        await self._directory.delete_access_key(_required(p, "AccessKeyId"), self._user_name(p, w))
        return {}

    async def _list_access_keys(
        self, p: dict[str, Any], _c: RequestContext, w: Principal
    ) -> dict[str, Any]:
        keys = self._directory.list_access_keys(self._user_name(p, w))
        return {
            "AccessKeyMetadata": [_key_out(k, secret=False) for k in keys],
            "IsTruncated": False,
        }

    # -- roles ---------------------------------------------------------------------------

    async def _create_role(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        role = await self._directory.create_role(
            _required(p, "RoleName"),
            _required(p, "AssumeRolePolicyDocument"),
            path=p.get("Path"),
            description=p.get("Description") or "",
            max_session_duration=p.get("MaxSessionDuration"),
        )
        return {"Role": _role_out(role)}

    async def _get_role(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        return {"Role": _role_out(self._directory.get_role(_required(p, "RoleName")))}

    async def _update_trust(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        await self._directory.update_trust_policy(
            _required(p, "RoleName"), _required(p, "PolicyDocument")
        )
        return {}

    async def _delete_role(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        await self._directory.delete_role(_required(p, "RoleName"))
        return {}

    async def _list_roles(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        roles = self._directory.list_roles(p.get("PathPrefix") or "/")
        return {"Roles": [_role_out(r) for r in roles], "IsTruncated": False}

    # -- inline policies -----------------------------------------------------------------

    @staticmethod
    def _owner_member(kind: OwnerKind) -> str:
        return "UserName" if kind is OwnerKind.USER else "RoleName"

    def _put_inline(self, kind: OwnerKind) -> Operation:
        async def put(p: dict[str, Any], _c: RequestContext, _w: Principal) -> dict[str, Any]:
            await self._directory.put_inline_policy(
                kind,
                _required(p, self._owner_member(kind)),
                _required(p, "PolicyName"),
                _required(p, "PolicyDocument"),
            )
            return {}

        return put

    def _get_inline(self, kind: OwnerKind) -> Operation:
        async def get(p: dict[str, Any], _c: RequestContext, _w: Principal) -> dict[str, Any]:
            member = self._owner_member(kind)
            policy = self._directory.get_inline_policy(
                kind, _required(p, member), _required(p, "PolicyName")
            )
            return {
                member: policy.owner_name,
                "PolicyName": policy.policy_name,
                "PolicyDocument": _document(policy.document),
            }

        return get

    def _delete_inline(self, kind: OwnerKind) -> Operation:
        async def delete(p: dict[str, Any], _c: RequestContext, _w: Principal) -> dict[str, Any]:
            await self._directory.delete_inline_policy(
                kind, _required(p, self._owner_member(kind)), _required(p, "PolicyName")
            )
            return {}

        return delete

    def _list_inline(self, kind: OwnerKind) -> Operation:
        async def list_(p: dict[str, Any], _c: RequestContext, _w: Principal) -> dict[str, Any]:
            names = self._directory.list_inline_policies(
                kind, _required(p, self._owner_member(kind))
            )
            return {"PolicyNames": names, "IsTruncated": False}

        return list_

    # -- managed policies ----------------------------------------------------------------

    async def _create_policy(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        policy = await self._directory.create_policy(
            _required(p, "PolicyName"),
            _required(p, "PolicyDocument"),
            path=p.get("Path"),
            description=p.get("Description") or "",
        )
        return {"Policy": _policy_out(policy, 0)}

    async def _get_policy(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        arn = _required(p, "PolicyArn")
        policy = self._directory.get_policy(arn)
        return {"Policy": _policy_out(policy, self._directory.attachment_count(arn))}

    async def _delete_policy(
        self, p: dict[str, Any], _c: RequestContext, _w: Principal
    ) -> dict[str, Any]:
        await self._directory.delete_policy(_required(p, "PolicyArn"))
        return {}

    def _attach(self, kind: OwnerKind) -> Operation:
        async def attach(p: dict[str, Any], _c: RequestContext, _w: Principal) -> dict[str, Any]:
            await self._directory.attach_policy(
                kind, _required(p, self._owner_member(kind)), _required(p, "PolicyArn")
            )
            return {}

        return attach

    def _detach(self, kind: OwnerKind) -> Operation:
        async def detach(p: dict[str, Any], _c: RequestContext, _w: Principal) -> dict[str, Any]:
            await self._directory.detach_policy(
                kind, _required(p, self._owner_member(kind)), _required(p, "PolicyArn")
            )
            return {}

        return detach

    def _list_attached(self, kind: OwnerKind) -> Operation:
        async def list_(p: dict[str, Any], _c: RequestContext, _w: Principal) -> dict[str, Any]:
            prefix = p.get("PathPrefix") or "/"
            policies = self._directory.list_attached(kind, _required(p, self._owner_member(kind)))
            attached = [
                {"PolicyName": x.name, "PolicyArn": x.arn}
                for x in policies
                if x.path.startswith(prefix)
            ]
            return {"AttachedPolicies": attached, "IsTruncated": False}

        return list_
