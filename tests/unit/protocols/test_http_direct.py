"""The direct lane of lamina's HTTP protocol, on a real uvicorn server and raw sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from lamina.protocols.http_direct import DirectHandler, direct_protocol
from lamina.protocols.wire import HttpResponse

LIMIT = 64


class App:
    """Direct for /direct/...; everything else answers through ASGI."""

    def __init__(self) -> None:
        self.direct_calls: list[tuple[str, str, str, bytes, dict[str, str]]] = []
        self.asgi_paths: list[str] = []

    def direct(self, method: str, path: str) -> tuple[DirectHandler, int] | None:
        return (self._handle, LIMIT) if path.startswith("/direct/") else None

    async def _handle(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
        source_ip: str,
    ) -> HttpResponse:  # fmt: skip
        self.direct_calls.append((method, path, query, body, dict(headers)))
        if path == "/direct/boom":
            raise RuntimeError("boom")
        if path == "/direct/smuggle":
            return HttpResponse(200, {"X-Value": "a\r\nSet-Cookie: evil=1"}, b"")
        if path == "/direct/slow":
            await asyncio.sleep(0.05)
        return HttpResponse(200, {"X-Path": path}, b"direct:" + body)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.asgi_paths.append(scope["path"])
        answer = b"asgi:" + body
        length = [(b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": length})
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def served() -> AsyncIterator[tuple[App, int]]:
    app = App()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=direct_protocol(app), lifespan="off", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield app, sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    while head.startswith(b"HTTP/1.1 100 "):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def exchange(port: int, *requests: bytes, pipelined: bool = False) -> list[bytes]:
    """`requests` on one connection, each after the last's answer unless `pipelined`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    if pipelined:
        writer.write(b"".join(requests))
        out = [await read_response(reader) for _ in requests]
    else:
        for raw in requests:
            writer.write(raw)
            out.append(await read_response(reader))
    writer.close()
    return out


def body(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_claimed_paths_skip_asgi_and_keep_the_connection(
    served: tuple[App, int],
) -> None:
    app, port = served
    first, second = await exchange(
        port, post("/direct/a?x=1&y=%20", b"one"), post("/direct/b", b"two", "X-Custom: v")
    )
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"direct:one")
    assert b"x-path: /direct/a" in first.lower() and b"date: " in first.lower()
    assert second.endswith(b"direct:two")
    assert [c[:4] for c in app.direct_calls] == [
        ("POST", "/direct/a", "x=1&y=%20", b"one"),
        ("POST", "/direct/b", "", b"two"),
    ]
    assert app.direct_calls[1][4]["x-custom"] == "v"
    assert app.asgi_paths == []


async def test_pipelined_requests_answer_in_order_across_both_lanes(
    served: tuple[App, int],
) -> None:
    app, port = served
    # Requests queued behind one in progress take uvicorn's pipeline (through ASGI).
    requests = post("/direct/slow", b"1"), post("/other", b"2"), post("/direct/c", b"3")
    answers = await exchange(port, *requests, pipelined=True)
    assert [body(a) for a in answers] == [b"direct:1", b"asgi:2", b"asgi:3"]
    assert app.asgi_paths == ["/other", "/direct/c"]


async def test_what_the_direct_lane_does_not_take_goes_through_asgi(
    served: tuple[App, int],
) -> None:
    app, port = served
    too_big = post("/direct/big", b"x" * (LIMIT + 1))
    chunked = (
        b"POST /direct/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    expect = post("/direct/expect", b"e", "Expect: 100-continue")
    head = b"HEAD /direct/head HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = await exchange(port, too_big, chunked, expect)
    assert [body(a) for a in answers] == [b"asgi:" + b"x" * (LIMIT + 1), b"asgi:abc", b"asgi:e"]
    # A HEAD answer has no body: uvicorn's cycle drops it, so the (pipelined) answer
    # after it reads clean.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + post("/direct/after", b"!"))
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
    assert body(await read_response(reader)) == b"asgi:!"
    writer.close()
    assert app.asgi_paths == [
        "/direct/big", "/direct/chunked", "/direct/expect", "/direct/head", "/direct/after"
    ]  # fmt: skip


async def test_connection_close_and_http_1_0_close_after_the_answer(
    served: tuple[App, int],
) -> None:
    _, port = served
    for raw in (
        post("/direct/a", b"c", "Connection: close"),
        post("/direct/a", b"c").replace(b"HTTP/1.1", b"HTTP/1.0", 1),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        data = await asyncio.wait_for(reader.read(), 5)  # returns at EOF: the server closed
        assert data.endswith(b"direct:c") and b"connection: close" in data.lower()
        writer.close()


async def test_a_failing_handler_or_a_bad_header_is_a_500_and_the_server_goes_on(
    served: tuple[App, int],
) -> None:
    _, port = served
    failed, refused, after = await exchange(
        port, post("/direct/boom", b""), post("/direct/smuggle", b""), post("/direct/ok", b"!")
    )
    assert failed.startswith(b"HTTP/1.1 500 ")
    assert refused.startswith(b"HTTP/1.1 500 ") and b"evil" not in refused
    assert after.endswith(b"direct:!")
