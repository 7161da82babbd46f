"""What a service sees of the request that called it, and the shape of a service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    access_key_id: str
    account_id: str
    region: str
    service: str  # the SigV4 signing name: "lambda", "logs", "iam", ...
    operation: str  # botocore operation name: "CreateFunction"
    headers: Mapping[str, str]  # lower-cased names
    source_ip: str


class ServiceHandler(Protocol):
    """One AWS-compatible service: operation name + parsed input -> output members.

    `params` and the returned dict use the botocore model's member names (AWS casing);
    blobs are `bytes`, timestamps `datetime`. Errors are raised as `LaminaError`s.
    An operation the service does not implement raises `LaminaError` with code
    `UnknownOperationException` (status 400).
    """

    async def __call__(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]: ...
