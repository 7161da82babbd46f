"""Reading a gateway request: its key and its JSON body."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lamina.gateway.errors import InvalidGatewayRequest


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def openai_key(request: Request) -> str | None:
    return bearer(request) or request.headers.get("api-key")


def anthropic_key(request: Request) -> str | None:
    return request.headers.get("x-api-key") or bearer(request)


async def json_body(request: Request) -> tuple[dict[str, Any], int]:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidGatewayRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidGatewayRequest("the request body must be a JSON object")
    return body, len(raw)


class JSONBytes(Response):
    """A JSON response rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
