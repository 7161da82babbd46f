"""A service as a table of operations: the one dispatch every service shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lamina.errors import LaminaError
from lamina.protocols.context import RequestContext

Params = dict[str, Any]
Operation = Callable[[Params, RequestContext], Awaitable[Params]]


class OperationTable:
    """A `ServiceHandler` built from operation name -> `async (params, ctx) -> output`."""

    def __init__(self, service: str, operations: Mapping[str, Operation]) -> None:
        self._service = service
        self._operations = dict(operations)

    def __contains__(self, operation: str) -> bool:
        return operation in self._operations

    async def __call__(self, operation: str, params: Params, ctx: RequestContext) -> Params:
        handler = self._operations.get(operation)
        if handler is None:
            raise LaminaError(
                f"{self._service} operation {operation} is not supported by lamina yet.",
                code="UnknownOperationException",
                status=400,
            )
        return await handler(params, ctx)
