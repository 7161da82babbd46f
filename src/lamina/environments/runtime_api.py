"""The Lambda Runtime API (2018-06-01) served to one execution environment.

Each environment gets its own listening socket on loopback, so a request needs no
token to say which environment it came from — exactly like Lambda, where
`AWS_LAMBDA_RUNTIME_API` is a plain `host:port` (awslambdaric accepts no path
prefix). The server is a small asyncio protocol over httptools rather than the ASGI
stack: it sits on the warm-invoke hot path, twice per invocation.

Endpoints (one method each on `RuntimeApiHandler`):
    GET  /2018-06-01/runtime/invocation/next          long-poll for the next event
    POST /2018-06-01/runtime/invocation/{id}/response  the handler's result
    POST /2018-06-01/runtime/invocation/{id}/error     the handler's error
    POST /2018-06-01/runtime/init/error                init failed
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import httptools
import orjson

PREFIX = b"/2018-06-01/runtime/"
MAX_BODY = 6 * 1024 * 1024 + 100  # Lambda's 6 MB response limit, with a little slack


@dataclass(slots=True)
class Invocation:
    request_id: str
    payload: bytes
    # Set again by the environment at delivery (init time is not the handler's time):
    # assigned in place, as a copy per warm invoke measured a few percent of its CPU.
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str
    client_context: str | None = None  # JSON text, already base64-decoded
    cognito_identity: str | None = None
    cpu: int = -1  # where the environment should run (colocation.py), -1 anywhere


# Hands an event to a runtime waiting for it; False if that runtime has gone.
Deliver = Callable[[Invocation], bool]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes


ACCEPTED = Reply(202, b'{"status":"OK"}')


def error_reply(status: int, error_type: str, message: str) -> Reply:
    return Reply(status, orjson.dumps({"errorMessage": message, "errorType": error_type}))


class RuntimeApiHandler(Protocol):
    def next_invocation(self, deliver: Deliver) -> None:
        """The runtime asks for its next event: call `deliver` with it, at once if one
        is waiting, else when one arrives (`deliver` says False if the runtime has gone
        meanwhile; the event then waits for the next ask)."""
        ...

    def invocation_response(self, request_id: str, body: bytes, too_large: bool) -> Reply: ...
    def invocation_error(self, request_id: str, error_type: str | None, body: bytes) -> Reply: ...
    def init_error(self, error_type: str | None, body: bytes) -> Reply: ...


_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 403: b"Forbidden",
            404: b"Not Found", 413: b"Request Entity Too Large", 500: b"Internal Server Error"}  # fmt: skip


def _next_head(inv: Invocation) -> bytes:
    lines = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
        b"Lambda-Runtime-Aws-Request-Id: ", inv.request_id.encode(), b"\r\n",
        b"Lambda-Runtime-Deadline-Ms: ", str(inv.deadline_ms).encode(), b"\r\n",
        b"Lambda-Runtime-Invoked-Function-Arn: ", inv.invoked_function_arn.encode(), b"\r\n",
        b"Lambda-Runtime-Trace-Id: ", inv.trace_id.encode(), b"\r\n",
    ]  # fmt: skip
    if inv.client_context is not None:
        lines += [b"Lambda-Runtime-Client-Context: ", inv.client_context.encode(), b"\r\n"]
    if inv.cognito_identity is not None:
        lines += [b"Lambda-Runtime-Cognito-Identity: ", inv.cognito_identity.encode(), b"\r\n"]
    lines += [b"Content-Length: ", str(len(inv.payload)).encode(), b"\r\n\r\n"]
    return b"".join(lines)


class LongPoll(asyncio.Protocol):
    """A runtime's connection that asks for its next event and waits for it: the part
    the HTTP Runtime API and the private channel (runtime_channel.py) share.

    The event is written from inside the environment's hand-over, not from a future's
    callback: a callback runs on the loop's next turn, ~10-15 µs later on every warm
    invocation's way to its environment."""

    def __init__(self, handler: RuntimeApiHandler) -> None:
        self._handler = handler
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def encode_next(self, inv: Invocation) -> bytes:
        """The bytes that hand `inv` to the runtime."""
        raise NotImplementedError

    def _await_next(self) -> None:
        self._handler.next_invocation(self._deliver)

    def _deliver(self, inv: Invocation) -> bool:
        if self._transport is None or self._transport.is_closing():
            return False
        self._transport.write(self.encode_next(inv))
        return True


class _Connection(LongPoll):
    """One keep-alive connection from the runtime; requests are answered in order."""

    def __init__(self, handler: RuntimeApiHandler) -> None:
        super().__init__(handler)
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._error_type: str | None = None
        self._body: list[bytes] = []
        self._size = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(Reply(400, b'{"errorMessage":"malformed HTTP request"}'), close=True)

    def encode_next(self, inv: Invocation) -> bytes:
        return _next_head(inv) + inv.payload

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._error_type, self._body, self._size = b"", None, [], 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"lambda-runtime-function-error-type":
            self._error_type = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= MAX_BODY:
            self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        url = self._url.split(b"?", 1)[0]
        if not url.startswith(PREFIX):
            self._write(error_reply(404, "NotFound", "unknown Runtime API path"))
            return
        path = url[len(PREFIX) :]
        body = b"".join(self._body)
        if method == b"GET" and path == b"invocation/next":
            self._await_next()
        elif method == b"POST" and path.startswith(b"invocation/"):
            request_id, _, action = path[len(b"invocation/") :].partition(b"/")
            rid = request_id.decode("latin-1")
            if action == b"response":
                reply = self._handler.invocation_response(rid, body, self._size > MAX_BODY)
            elif action == b"error":
                reply = self._handler.invocation_error(rid, self._error_type, body)
            else:
                reply = error_reply(404, "NotFound", "unknown Runtime API path")
            self._write(reply)
        elif method == b"POST" and path == b"init/error":
            self._write(self._handler.init_error(self._error_type, body))
        else:
            self._write(error_reply(404, "NotFound", "unknown Runtime API path"))

    def _write(self, reply: Reply, close: bool = False) -> None:
        if self._transport is None:
            return
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
            reply.status, _REASONS.get(reply.status, b"OK"), len(reply.body),
        )  # fmt: skip
        self._transport.write(head + reply.body)
        if close:
            self._transport.close()


class RuntimeApiServer:
    """Listens on 127.0.0.1:<free port> for one environment."""

    def __init__(self, handler: RuntimeApiHandler, host: str = "127.0.0.1") -> None:
        self._handler = handler
        self._host = host
        self._server: asyncio.AbstractServer | None = None
        self.address = ""

    async def start(self) -> str:
        # The listening socket is made here: given a host, create_server resolves it
        # first, and uvloop sends even a numeric address to getaddrinfo on a thread —
        # 170 µs against 27 alone, more under load, on every new environment's way up.
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((self._host, 0))
            sock.listen(16)
            sock.setblocking(False)
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _Connection(self._handler), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"{self._host}:{port}"
        return self.address

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
