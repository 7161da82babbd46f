"""The one place gateway errors become wire errors, in the inbound API's own shape:

OpenAI     {"error": {"message", "type", "param", "code"}}
Anthropic  {"type": "error", "error": {"type", "message"}}
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from lamina.errors import LaminaError
from lamina.gateway.errors import ErrorKind, UpstreamError

# Each kind's error type, as OpenAI and as Anthropic spell it.
_TYPES = {
    ErrorKind.INVALID_REQUEST: ("invalid_request_error", "invalid_request_error"),
    ErrorKind.AUTHENTICATION: ("invalid_request_error", "authentication_error"),
    ErrorKind.PERMISSION: ("permission_error", "permission_error"),
    ErrorKind.NOT_FOUND: ("invalid_request_error", "not_found_error"),
    ErrorKind.RATE_LIMIT: ("rate_limit_error", "rate_limit_error"),
    ErrorKind.BUDGET: ("insufficient_quota", "rate_limit_error"),
    ErrorKind.UPSTREAM: ("api_error", "api_error"),
    ErrorKind.OVERLOADED: ("api_error", "overloaded_error"),
    ErrorKind.TIMEOUT: ("timeout", "timeout_error"),
}


def kind_of(exc: LaminaError) -> ErrorKind:
    kind = getattr(exc, "kind", None)
    if isinstance(kind, ErrorKind):
        return kind
    return ErrorKind.INVALID_REQUEST if exc.status < 500 else ErrorKind.UPSTREAM


def status_of(exc: LaminaError) -> int:
    # A provider's 4xx is the request's fault and keeps its status; a provider's
    # failure is the gateway's bad gateway (503 when nothing healthy is left).
    if isinstance(exc, UpstreamError) and exc.status >= 500:
        return 503 if exc.kind is ErrorKind.OVERLOADED else 502
    return exc.status


def openai_body(exc: LaminaError) -> dict[str, object]:
    return {
        "error": {
            "message": exc.message,
            "type": _TYPES[kind_of(exc)][0],
            "param": None,
            "code": exc.code,
        }
    }


def anthropic_body(exc: LaminaError) -> dict[str, object]:
    return {"type": "error", "error": {"type": _TYPES[kind_of(exc)][1], "message": exc.message}}


def openai_error(exc: LaminaError) -> Response:
    return _response(openai_body(exc), exc)


def anthropic_error(exc: LaminaError) -> Response:
    return _response(anthropic_body(exc), exc)


def _response(body: dict[str, object], exc: LaminaError) -> Response:
    return JSONResponse(body, status_code=status_of(exc), headers=dict(exc.headers))
