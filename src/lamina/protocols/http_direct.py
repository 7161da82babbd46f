"""uvicorn's HTTP protocol with a direct lane: requests an app claims by path skip ASGI.

The AWS API reads a whole request, answers with a whole response and never streams,
so ASGI's machinery (a scope per request, receive/send message dicts, a cycle object
with an event, header lists rebuilt twice) bought it nothing and measured ~60 µs of
the server's CPU per warm Invoke on a 2-core machine — a tenth of the request. On
this lane the parser's callbacks gather the request and one task awaits the app's
handler, then writes the response in one call.

Everything else stays uvicorn's: the lane is taken only for a request that arrives on
an idle connection (no pipelined request in front of it), is not a HEAD, has no
`Expect: 100-continue` or upgrade, and whose declared body fits the app's limit; any other
request, and every other app (the gateway's streaming, health, code downloads), goes
through ASGI as before. Keep-alive, the keep-alive timeout, graceful shutdown and
the pipeline queue are uvicorn's own, which a direct request joins like any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
)

from lamina.protocols.wire import HttpResponse

_log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
# The client a serving process forwards a request for (lower case, as parsed).
FORWARDED_CLIENT = b"x-lamina-client"


def via_unix_socket(scope: Mapping[str, Any]) -> bool:
    """Did an ASGI request come in on a Unix socket (uvicorn: a server address without
    a port) — from lamina's own serving processes, not the network?"""
    server = scope.get("server")
    return isinstance(server, tuple) and server[1] is None


class DirectHandler(Protocol):
    """Answers one whole request; must not raise (errors are responses)."""

    def __call__(
        self, method: str, path: str, query: str, headers: Headers, body: bytes, source_ip: str
    ) -> Awaitable[HttpResponse]: ...


class DirectRoutes(Protocol):
    """The app's side: which handler, if any, serves `path` without ASGI."""

    def direct(self, method: str, path: str) -> tuple[DirectHandler, int] | None:
        """The handler and the largest body it takes, or None to go through ASGI."""
        ...


class _Quiet:
    """Stands in for the cycle's asyncio.Event, which uvicorn sets on disconnect."""

    def set(self) -> None:
        pass


class _DirectCycle:
    """One direct request, with the attributes uvicorn's protocol reads off a cycle."""

    message_event = _Quiet()

    def __init__(
        self, protocol: DirectHttpProtocol, handler: DirectHandler, method: str, url: bytes
    ) -> None:
        self.protocol = protocol
        self.handler = handler
        self.method = method
        self.url = url
        self.body: list[bytes] = []
        self.keep_alive = True
        self.disconnected = False
        self.response_complete = False

    async def run(self) -> None:
        protocol = self.protocol
        parsed = httptools.parse_url(self.url)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in protocol.headers]
        client = protocol.client
        try:
            response = await self.handler(
                self.method,
                parsed.path.decode("utf-8", "replace"),
                (parsed.query or b"").decode("latin-1"),
                headers,
                b"".join(self.body),
                client[0] if client else protocol.forwarded_client(),
            )
        except Exception:
            _log.exception("unhandled error in a direct %s request", self.method)
            response = _INTERNAL_ERROR
        self.response_complete = True
        if self.disconnected:
            return
        defaults = protocol.server_state.default_headers
        try:
            data = _encode(response, defaults, self.keep_alive)
        except ValueError:
            _log.exception("refused the answer to a direct %s request", self.method)
            data = _encode(_INTERNAL_ERROR, defaults, self.keep_alive)
        protocol.transport.write(data)
        if self.keep_alive:
            protocol.on_response_complete()
        else:
            protocol.transport.close()


_INTERNAL_ERROR = HttpResponse(500, {"Content-Type": "text/plain"}, b"Internal Server Error")


def _encode(response: HttpResponse, defaults: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:
    out = [STATUS_LINE[response.status]]
    for name, value in defaults:
        out += [name, b": ", value, b"\r\n"]
    headers = response.headers
    # uvicorn refuses these too: a header must not smuggle in a line break. One search
    # over all names (joined by a character names may hold) and one over all values
    # (joined by a tab, which values may hold) instead of two per header.
    names = "_".join(headers).encode("latin-1", "replace")
    values = "\t".join(headers.values()).encode("latin-1", "replace")
    if HEADER_RE.search(names) or HEADER_VALUE_RE.search(values):
        bad = next(k for k, v in headers.items() if _invalid_header(k, v))
        raise ValueError(f"invalid response header {bad!r}")
    for key, text in headers.items():
        out += [key.encode("latin-1"), b": ", text.encode("latin-1", "replace"), b"\r\n"]
    out += [b"content-length: ", str(len(response.body)).encode(), b"\r\n"]
    if not keep_alive:
        out.append(b"connection: close\r\n")
    out += [b"\r\n", response.body]
    return b"".join(out)


def _invalid_header(name: str, value: str) -> bool:
    return bool(
        HEADER_RE.search(name.encode("latin-1", "replace"))
        or HEADER_VALUE_RE.search(value.encode("latin-1", "replace"))
    )


class DirectHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that serves `routes.direct(...)` requests without ASGI."""

    routes: DirectRoutes  # set on the subclass that `direct_protocol` makes
    # A connection on lamina's own Unix socket comes from one of its serving processes
    # (serving/forward.py), which names the client it forwards for in this header. Only
    # there is it believed: on TCP anyone could send it.
    _via_unix_socket = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._via_unix_socket = isinstance(transport.get_extra_info("sockname"), str)

    def forwarded_client(self) -> str:
        if not self._via_unix_socket:
            return ""
        for name, value in self.headers:
            if name == FORWARDED_CLIENT:
                return value.decode("latin-1")
        return ""

    def on_message_begin(self) -> None:
        # uvicorn builds the request's ASGI scope here (a dict and a copy of the app's
        # state); a direct request never reads it, so it is built once a request is
        # known to go through ASGI (`_begin_asgi`).
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def _begin_asgi(self) -> None:
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers
        if self._via_unix_socket:
            self.scope["client"] = (self.forwarded_client(), 0)

    def on_headers_complete(self) -> None:
        cycle = self._direct_cycle()
        if cycle is None:
            self._begin_asgi()
            super().on_headers_complete()
            return
        self.cycle = cycle  # type: ignore[assignment]  # duck-typed: see _DirectCycle

    def _direct_cycle(self) -> _DirectCycle | None:
        parser = self.parser
        if self.expect_100_continue or parser.should_upgrade():
            return None
        previous: Any = self.cycle
        if previous is not None and not previous.response_complete:
            return None  # pipelined behind a request in progress: uvicorn queues it
        method = parser.get_method().decode("ascii")
        if method == "HEAD":
            return None  # uvicorn's cycle knows to send a HEAD response without its body
        path = self.url.partition(b"?")[0].decode("latin-1")
        found = self.routes.direct(method, path)
        if found is None:
            return None
        handler, limit = found
        for name, value in self.headers:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    return None  # ASGI's path refuses it with the app's error
            elif name == b"transfer-encoding":
                return None  # chunked: its size is not known up front
        cycle = _DirectCycle(self, handler, method, self.url)
        cycle.keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        return cycle

    def on_body(self, body: bytes) -> None:
        cycle: Any = self.cycle
        if isinstance(cycle, _DirectCycle):
            cycle.body.append(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        cycle: Any = self.cycle
        if not isinstance(cycle, _DirectCycle):
            super().on_message_complete()
            return
        task = self.loop.create_task(cycle.run())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


def direct_protocol(routes: DirectRoutes) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn (`http=`), serving `routes` directly."""
    return type("LaminaHttpProtocol", (DirectHttpProtocol,), {"routes": routes})
