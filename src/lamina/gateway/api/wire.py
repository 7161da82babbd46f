"""Reading a gateway request: its key and its JSON body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Mapping
from typing import Any, TypeVar

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

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
    raw = await _body(request.receive)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidGatewayRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidGatewayRequest("the request body must be a JSON object")
    return body, len(raw)


async def _body(receive: Receive) -> bytes:
    """The request body, read as `Request.body()` does without its async generator
    (on every call, before the provider is asked)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            return b"".join([*chunks, body]) if chunks else body
        chunks.append(body)


class JSONBytes(Response):
    """A JSON response rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ClientWatch:
    """Cancels the handler's task when its client goes away, which cancels the upstream
    call wherever it is waiting. The body has been read: the next message is the client
    going away (or the end of the response cycle, which never comes first here).

    One watcher task for a whole call: a streamed call hands it from the upstream call
    (`guard`) to the `EventStream` that sends the answer, rather than starting a second
    one between the provider's first chunk and the client's. The task is created on the
    loop's next turn — once the handler waits for the provider, its request sent —
    rather than before: creating a task costs ~10 µs, better spent while the provider
    thinks. A client gone in between is seen then: its disconnect message waits."""

    __slots__ = ("_handler", "_receive", "_start", "_task")

    def __init__(self, receive: Receive) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handler = handler
        self._receive = receive
        self._task: asyncio.Task[None] | None = None
        self._start: asyncio.Handle | None = handler.get_loop().call_soon(self._watch)

    def _watch(self) -> None:
        self._start = None
        self._task = asyncio.ensure_future(_gone(self._receive))
        self._task.add_done_callback(self._client_left)

    def _client_left(self, done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is None:
            self._handler.cancel("client disconnected")

    def withdraw(self) -> bool:
        """After a CancelledError in the handler: whether it came from this watcher, the
        client having gone away — then it is withdrawn (the handler goes on to clean up
        and answer no one) and True; False for any other cancellation."""
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            self._handler.uncancel()
            return True
        return False

    async def guard(self, call: Awaitable[T]) -> T:
        """Await `call` in this task; `ClientClosed` if the client leaves first."""
        try:
            return await call
        except asyncio.CancelledError:
            if self.withdraw():
                raise ClientClosed("the client closed the connection") from None
            raise

    def stop(self) -> None:
        if self._start is not None:
            self._start.cancel()
            self._start = None
        if self._task is not None:
            self._task.remove_done_callback(self._client_left)
            self._task.cancel()


async def unless_disconnected(request: Request, call: Awaitable[T]) -> T:
    """Await `call` in this task, cancelling it (and so its upstream request) if the
    client leaves first. One watcher task, not two: this is on every request."""
    watch = ClientWatch(request.receive)
    try:
        return await watch.guard(call)
    finally:
        watch.stop()


async def watched(request: Request, call: Awaitable[T]) -> tuple[T, ClientWatch]:
    """As `unless_disconnected`, but the watcher goes on watching: hand it to the
    `EventStream` that sends the answer, which stops it."""
    watch = ClientWatch(request.receive)
    try:
        return await watch.guard(call), watch
    except BaseException:
        watch.stop()
        raise


class EventStream(Response):
    """A `text/event-stream` response sent from the handler's own task.

    Starlette's StreamingResponse sends the body from a second task of an anyio task
    group while the first listens for the disconnect: that costs a task group, a task
    and a turn of the loop before the first byte (~0.13 ms on a warm core, ~0.3 ms on
    a cold one), and the gateway's whole budget for time to first token is 1 ms. Here
    the handler's task sends every event, and one plain watcher task cancels it when
    the client goes away (as `unless_disconnected`), which cancels the upstream call
    wherever the relay is waiting — a silent upstream included."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str],
                 watch: ClientWatch | None = None) -> None:
        self.events = events
        self.status_code = 200
        self.background = None
        # What init_headers makes of them, without its general cases (a body, a
        # content-type or content-length among them).
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                            for k, v in headers.items()]
        self.raw_headers.append((b"content-type", b"text/event-stream; charset=utf-8"))
        self._watch = watch  # the call's watcher (`watched`), else one is started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = self._watch or ClientWatch(receive)
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.raw_headers})
            async for event in self.events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if watch.withdraw():
                return  # the client left; the relay has ended the upstream call
            raise
        except OSError:
            return  # the server found the client gone while writing
        finally:
            watch.stop()
            await self.events.aclose()  # runs the relay's cleanup if it did not finish


async def _gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
