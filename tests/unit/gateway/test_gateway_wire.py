"""The gateway's HTTP edge without a server: the model-call endpoints dispatched
without Starlette's middleware (and everything else through it), the client watcher
and the request body."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from lamina.gateway.api.app import GatewayApp
from lamina.gateway.api.wire import ClientWatch, EventStream, json_body, watched
from lamina.gateway.errors import ClientClosed

Message = dict[str, Any]


def scope(method: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "headers": [(b"host", b"x")],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), **extra}


async def call(app: Any, s: dict[str, Any],
               messages: list[Message] | None = None) -> list[Message]:
    incoming = list(messages or [{"type": "http.request", "body": b"", "more_body": False}])
    gone = asyncio.Event()

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(s, receive, send)
    return sent


def status(sent: list[Message]) -> int:
    return int(sent[0]["status"])


def gateway_app() -> tuple[GatewayApp, list[str]]:
    seen: list[str] = []

    async def chat(request: Request) -> Response:
        seen.append("chat" if "app" not in request.scope else "chat via starlette")
        return PlainTextResponse("chat")

    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    async def model(request: Request) -> Response:
        return PlainTextResponse(request.path_params["name"])

    return GatewayApp([
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/embeddings", boom, methods=["POST"]),
        Route("/v1/models/{name:path}", model, methods=["GET"]),
        Route("/gateway/other", chat, methods=["POST"]),
    ]), seen  # fmt: skip


async def test_model_calls_skip_starlette_and_the_rest_goes_through_it() -> None:
    app, seen = gateway_app()
    sent = await call(app, scope("POST", "/v1/chat/completions"))
    assert status(sent) == 200 and sent[1]["body"] == b"chat"
    assert await call(app, scope("POST", "/gateway/other")) and seen == [
        "chat", "chat via starlette"]  # not a model call: Starlette's route
    assert status(await call(app, scope("GET", "/v1/chat/completions"))) == 405
    assert status(await call(app, scope("POST", "/v1/nowhere"))) == 404
    sent = await call(app, scope("GET", "/v1/models/a/b"))
    assert status(sent) == 200 and sent[1]["body"] == b"a/b"
    # Behind a root path the route table decides, as before.
    await call(app, scope("POST", "/x/v1/chat/completions", root_path="/x"))
    assert seen[-1] == "chat via starlette"


async def test_an_unexpected_error_is_a_500_and_raised_for_the_server_to_log() -> None:
    app, _ = gateway_app()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    with pytest.raises(RuntimeError, match="a bug"):
        await app(scope("POST", "/v1/embeddings"), receive, send)
    assert status(sent) == 500 and sent[1]["body"] == b"Internal Server Error"


async def test_the_body_is_read_whole_and_a_disconnect_is_a_client_disconnect() -> None:
    parts = [{"type": "http.request", "body": b'{"a":', "more_body": True},
             {"type": "http.request", "body": b" 1}", "more_body": False}]

    async def receive() -> Message:
        return parts.pop(0)

    assert await json_body(Request(scope("POST", "/"), receive)) == ({"a": 1}, 8)

    async def gone() -> Message:
        return {"type": "http.disconnect"}

    with pytest.raises(ClientDisconnect):
        await json_body(Request(scope("POST", "/"), gone))


async def test_the_watcher_starts_on_the_next_turn_and_stops_cleanly() -> None:
    async def never() -> Message:
        await asyncio.Event().wait()
        raise AssertionError

    before = len(asyncio.all_tasks())
    watch = ClientWatch(never)
    assert len(asyncio.all_tasks()) == before  # nothing created before the loop turns
    watch.stop()  # stopped before it started: it never does
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before

    watch = ClientWatch(never)
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before + 1
    watch.stop()
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before


async def test_a_client_leaving_cancels_the_call_and_is_client_closed() -> None:
    left = asyncio.Event()

    async def receive() -> Message:
        await left.wait()
        return {"type": "http.disconnect"}

    async def upstream() -> None:
        left.set()  # the client goes while the provider thinks
        await asyncio.sleep(5)

    request = Request(scope("POST", "/"), receive)
    with pytest.raises(ClientClosed):
        await watched(request, upstream())
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_an_event_stream_keeps_the_calls_watcher_until_the_client_goes() -> None:
    left = asyncio.Event()
    closed: list[bool] = []

    async def receive() -> Message:
        await left.wait()
        return {"type": "http.disconnect"}

    async def answer() -> str:
        return "reply"

    async def events() -> Any:
        try:
            yield b"data: 1\n\n"
            left.set()  # the client goes while the relay waits for the provider
            await asyncio.sleep(5)
            yield b"data: 2\n\n"
        finally:
            closed.append(True)

    request = Request(scope("POST", "/"), receive)
    reply, watch = await watched(request, answer())
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await EventStream(events(), {}, watch)(request.scope, receive, send)
    assert reply == "reply" and closed == [True]
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n"]
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


def test_event_stream_headers_are_starlettes() -> None:
    async def nothing() -> Any:
        yield b""

    headers = {"x-lamina-provider": "p", "X-Lamina-Cache": "miss"}
    reference = Response(media_type="text/event-stream", headers=headers)
    reference.raw_headers = [h for h in reference.raw_headers if h[0] != b"content-length"]
    assert EventStream(nothing(), headers).raw_headers == reference.raw_headers
