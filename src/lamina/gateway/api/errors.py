"""The one place gateway errors become wire errors, in the inbound API's own shape:

OpenAI     {"error": {"message", "type", "param", "code"}}
Anthropic  {"type": "error", "error": {"type", "message"}}
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from lamina.errors import LaminaError
from lamina.gateway.errors import ErrorKind

_OPENAI_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "invalid_request_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "invalid_request_error",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.BUDGET: "insufficient_quota",
    ErrorKind.UPSTREAM: "api_error",
    ErrorKind.OVERLOADED: "api_error",
    ErrorKind.TIMEOUT: "timeout",
}
_ANTHROPIC_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.BUDGET: "rate_limit_error",
    ErrorKind.UPSTREAM: "api_error",
    ErrorKind.OVERLOADED: "overloaded_error",
    ErrorKind.TIMEOUT: "timeout_error",
}


def kind_of(exc: LaminaError) -> ErrorKind:
    kind = getattr(exc, "kind", None)
    if isinstance(kind, ErrorKind):
        if kind is ErrorKind.UPSTREAM and exc.status in (503, 529):
            return ErrorKind.OVERLOADED
        if kind is ErrorKind.UPSTREAM and 400 <= exc.status < 500 and exc.status != 429:
            return ErrorKind.INVALID_REQUEST
        if kind is ErrorKind.UPSTREAM and exc.status == 429:
            return ErrorKind.RATE_LIMIT
        return kind
    return ErrorKind.INVALID_REQUEST if exc.status < 500 else ErrorKind.UPSTREAM


def status_of(exc: LaminaError) -> int:
    # A provider's 4xx is the request's fault and keeps its status; a provider's
    # failure is the gateway's bad gateway (503 when nothing healthy is left).
    if getattr(exc, "kind", None) is ErrorKind.UPSTREAM and exc.status >= 500:
        return 503 if exc.status in (503, 529) else 502
    return exc.status


def openai_body(exc: LaminaError) -> dict[str, object]:
    return {
        "error": {
            "message": exc.message,
            "type": _OPENAI_TYPES[kind_of(exc)],
            "param": None,
            "code": exc.code,
        }
    }


def anthropic_body(exc: LaminaError) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": _ANTHROPIC_TYPES[kind_of(exc)], "message": exc.message},
    }


def openai_error(exc: LaminaError) -> Response:
    return JSONResponse(openai_body(exc), status_code=status_of(exc), headers=dict(exc.headers))


def anthropic_error(exc: LaminaError) -> Response:
    return JSONResponse(anthropic_body(exc), status_code=status_of(exc), headers=dict(exc.headers))
