"""Reading a gateway request: its key and its JSON body."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lamina.gateway.errors import ClientClosed, InvalidGatewayRequest

T = TypeVar("T")


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


async def _disconnected(request: Request) -> None:
    # The body has been read: the next message is the client going away (or the end
    # of the response cycle, which never comes first here).
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, call: Awaitable[T]) -> T:
    """Run `call`, cancelling it (and so its upstream request) if the client leaves."""
    work = asyncio.ensure_future(call)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((work, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
            try:
                await work
            except asyncio.CancelledError:
                pass
            except Exception:  # the call's own failure is moot: the client has left
                pass
            raise ClientClosed("the client closed the connection")
    return work.result()
