"""The HTTP message as the protocols see it, and the one interface every protocol has.

A protocol turns an `HttpRequest` into an operation name plus botocore-shaped params,
and a service's output (or a `LaminaError`) back into an `HttpResponse`. It never
touches ASGI, sockets or SigV4: the router does that, so each protocol can be used
(and tested) on plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from lamina.errors import LaminaError


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str  # upper-case
    path: str  # the raw path as sent, still percent-encoded (labels may hold %2F)
    query: Mapping[str, list[str]]  # decoded; repeated keys keep their order
    headers: Mapping[str, str]  # lower-cased names; repeated headers joined with ","
    body: bytes


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    operation: str  # botocore operation name
    params: dict[str, Any]


class WireProtocol(Protocol):
    """One AWS wire protocol bound to one botocore service model."""

    def parse_request(self, request: HttpRequest) -> ParsedRequest:
        """Find the operation and parse its input; raise `LaminaError` on bad input."""
        ...

    def serialize_response(
        self, operation: str, output: Mapping[str, Any], request_id: str
    ) -> HttpResponse: ...

    def serialize_error(self, error: LaminaError, request_id: str) -> HttpResponse: ...


def parse_query_string(raw: str) -> dict[str, list[str]]:
    """Decode a URL query string the way AWS's REST services read it.

    Unlike `urllib.parse.parse_qs`, a literal "+" stays "+": botocore (like every AWS
    SDK) percent-encodes spaces as %20 in URLs, so "+" only appears when it was meant.
    Keys without "=" (S3's `?versions`) get an empty value.
    """
    query: dict[str, list[str]] = {}
    if not raw:
        return query
    for pair in raw.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        query.setdefault(unquote(key), []).append(unquote(value))
    return query


def fault_type(error: LaminaError) -> str:
    """AWS says who is at fault: the caller ("User"/"Sender") or us."""
    return "User" if error.sender_fault or error.status < 500 else "Service"
