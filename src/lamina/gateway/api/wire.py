"""Reading a gateway request: its key and its JSON body."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lamina.gateway.errors import ClientClosed, InvalidGatewayRequest, RequestTooLarge

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


MAX_BODY_BYTES = 64 * 1024 * 1024  # images travel inline as base64


async def json_body(request: Request) -> tuple[dict[str, Any], int]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestTooLarge(f"the request body is over {MAX_BODY_BYTES >> 20} MiB")
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
    """Await `call` in this task, cancelling it (and so its upstream request) if the
    client leaves first. One watcher task, not two: this is on every request."""
    handler = asyncio.current_task()
    assert handler is not None
    watch = asyncio.ensure_future(_disconnected(request))

    def client_left(done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is None:
            handler.cancel("client disconnected")

    watch.add_done_callback(client_left)
    try:
        return await call
    except asyncio.CancelledError:
        if watch.done() and not watch.cancelled():
            handler.uncancel()
            raise ClientClosed("the client closed the connection") from None
        raise
    finally:
        watch.remove_done_callback(client_left)
        watch.cancel()
