"""The Lambda service as the protocol layer sees it: operation name -> operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lamina.errors import LaminaError
from lamina.protocols.context import RequestContext

Operation = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class LambdaService:
    def __init__(self, operations: dict[str, Operation]) -> None:
        self._operations = operations

    async def __call__(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        handler = self._operations.get(operation)
        if handler is None:
            raise LaminaError(
                f"Lambda operation {operation} is not supported by lamina yet.",
                code="UnknownOperationException",
                status=400,
            )
        return await handler(params)
