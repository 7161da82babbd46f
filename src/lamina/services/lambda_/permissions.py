"""Who may call which Lambda operation: IAM identity policies plus each function's
resource policy (AddPermission / RemovePermission / GetPolicy).

Each operation is the IAM action `lambda:<Operation>` (Invoke is `lambda:InvokeFunction`)
on the function's ARN — qualified when the call names a version or alias, as AWS
evaluates it. Calls that name no function (ListFunctions) are checked on `*`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from lamina.errors import (
    InvalidParameterValue,
    LaminaError,
    PreconditionFailed,
    ResourceConflict,
    ResourceNotFound,
)
from lamina.functions.registry import FunctionRegistry
from lamina.functions.validation import parse_function_ref
from lamina.iam import PolicyKind, PolicyParser
from lamina.protocols.context import RequestContext
from lamina.services.lambda_.shapes import Shapes
from lamina.services.operations import OperationTable, Params

# Operations whose IAM action name differs from the operation name.
_ACTION_NAMES = {"Invoke": "InvokeFunction", "InvokeAsync": "InvokeAsync"}
_PRINCIPAL_SERVICE_SUFFIX = ".amazonaws.com"


class PrincipalInfo(Protocol):
    @property
    def arn(self) -> str: ...
    @property
    def kind(self) -> Any: ...


class Checker(Protocol):
    async def check(
        self,
        principal: Any,
        action: str,
        resource_arn: str,
        context: Mapping[str, object] | None = None,
        *,
        resource_policy: Any = None,
    ) -> None: ...


def action_for(operation: str) -> str:
    return "lambda:" + _ACTION_NAMES.get(operation, operation)


class FunctionPolicies:
    """Resource policies of functions, kept in memory and written through to SQL."""

    def __init__(
        self,
        registry: FunctionRegistry,
        save: Callable[[str, str, str], Any],
        shapes: Shapes,
    ) -> None:
        self._registry = registry
        self._save = save  # async (function, qualifier, document json or "") -> None
        self._shapes = shapes
        # (function, qualifier or "") -> policy document; its RevisionId kept beside it,
        # since a policy document has no such member.
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}
        self.revisions: dict[tuple[str, str], str] = {}
        # Parsed once when written, so a check on the invoke path never parses JSON.
        self._parsed: dict[tuple[str, str], Any] = {}
        self._parser = PolicyParser()

    def load(self, stored: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        for key, document in stored.items():
            self.revisions[key] = str(document.get("RevisionId", ""))
            self.documents[key] = {k: v for k, v in document.items() if k != "RevisionId"}
            self._parsed[key] = self._parser.parse(json.dumps(self.documents[key]), PolicyKind.RESOURCE)

    async def _store(self, key: tuple[str, str], document: dict[str, Any] | None) -> None:
        if document is None:
            await self._save(key[0], key[1], "")
            self.documents.pop(key, None)
            self.revisions.pop(key, None)
            self._parsed.pop(key, None)
            return
        parsed = self._parser.parse(json.dumps(document), PolicyKind.RESOURCE)
        revision = str(uuid.uuid4())
        await self._save(key[0], key[1], json.dumps({**document, "RevisionId": revision}))
        self.documents[key] = document
        self.revisions[key] = revision
        self._parsed[key] = parsed

    def document(self, function: str, qualifier: str | None) -> Any:
        """The parsed policy of a function (qualifier None) or of a version or alias."""
        return self._parsed.get((function, qualifier or ""))

    async def add(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        self._registry.config(ref.name, ref.qualifier)  # 404 for an unknown function/qualifier
        key = (ref.name, ref.qualifier or "")
        document = self.documents.get(key) or {
            "Version": "2012-10-17",
            "Id": "default",
            "Statement": [],
        }
        self._check_revision(key, p.get("RevisionId"))
        sid = p["StatementId"]
        if any(s.get("Sid") == sid for s in document["Statement"]):
            raise ResourceConflict(
                f"The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
            )
        action = p["Action"]
        if not (action.startswith("lambda:") or action == "*"):
            raise InvalidParameterValue(
                f"Action {action!r} is not a Lambda action: use lambda:InvokeFunction or another lambda:* action."
            )
        principal = p["Principal"]
        statement: dict[str, Any] = {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": _principal_block(principal),
            "Action": action,
            "Resource": self._shapes.arn(ref.name, ref.qualifier),
        }
        conditions: dict[str, dict[str, str]] = {}
        if p.get("SourceArn"):
            conditions.setdefault("ArnLike", {})["AWS:SourceArn"] = p["SourceArn"]
        if p.get("SourceAccount"):
            conditions.setdefault("StringEquals", {})["AWS:SourceAccount"] = p["SourceAccount"]
        if p.get("PrincipalOrgID"):
            conditions.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = p["PrincipalOrgID"]
        if conditions:
            statement["Condition"] = conditions
        await self._store(key, {**document, "Statement": [*document["Statement"], statement]})
        return {"Statement": json.dumps(statement)}

    async def remove(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        key = (ref.name, ref.qualifier or "")
        self._registry.get(ref.name)
        document = self.documents.get(key)
        sid = p["StatementId"]
        if document is None or not any(s.get("Sid") == sid for s in document["Statement"]):
            raise ResourceNotFound(f"Statement {sid} is not found in resource policy.")
        self._check_revision(key, p.get("RevisionId"))
        remaining = [s for s in document["Statement"] if s.get("Sid") != sid]
        await self._store(key, {**document, "Statement": remaining} if remaining else None)
        return {}

    async def get(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        self._registry.get(ref.name)
        key = (ref.name, ref.qualifier or "")
        document = self.documents.get(key)
        if document is None:
            raise ResourceNotFound("The resource you requested does not exist.")
        return {"Policy": json.dumps(document), "RevisionId": self.revisions.get(key, "")}

    def forget(self, function: str) -> None:
        for key in [k for k in self.documents if k[0] == function]:
            del self.documents[key]
            self.revisions.pop(key, None)
            self._parsed.pop(key, None)

    def _check_revision(self, key: tuple[str, str], revision_id: str | None) -> None:
        if revision_id is not None and revision_id != self.revisions.get(key):
            raise PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetPolicy API to retrieve the latest Revision Id"
            )


def _principal_block(principal: str) -> dict[str, str]:
    if principal.endswith(_PRINCIPAL_SERVICE_SUFFIX):
        return {"Service": principal}
    if principal.isdigit():
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    return {"AWS": principal}


class AuthorizedLambda:
    """The Lambda service behind an IAM check of every call (root skips it)."""

    def __init__(
        self,
        table: OperationTable,
        checker: Checker,
        principal_of: Callable[[RequestContext], Any],
        conditions: Callable[[RequestContext], dict[str, object]],
        policies: FunctionPolicies,
        shapes: Shapes,
        is_root: Callable[[Any], bool],
    ) -> None:
        self._table = table
        self._checker = checker
        self._principal_of = principal_of
        self._conditions = conditions
        self._policies = policies
        self._shapes = shapes
        self._is_root = is_root

    async def __call__(self, operation: str, params: Params, ctx: RequestContext) -> Params:
        principal = self._principal_of(ctx)
        if not self._is_root(principal):
            await self._authorize(principal, operation, params, ctx)
        return await self._table(operation, params, ctx)

    async def _authorize(
        self, principal: Any, operation: str, params: Params, ctx: RequestContext
    ) -> None:
        resource, policy = "*", None
        name = params.get("FunctionName")
        if isinstance(name, str) and name:
            try:
                ref = parse_function_ref(name, params.get("Qualifier"))
            except LaminaError:
                return  # malformed: the operation itself refuses it with the right error
            resource = self._shapes.arn(ref.name, ref.qualifier)
            # A qualified call is allowed by the qualifier's policy or the function's.
            policy = self._policies.document(ref.name, ref.qualifier) or self._policies.document(
                ref.name, None
            )
        await self._checker.check(
            principal,
            action_for(operation),
            resource,
            self._conditions(ctx),
            resource_policy=policy,
        )
