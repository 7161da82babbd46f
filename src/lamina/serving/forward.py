"""A worker's way to the primary: requests it does not serve itself, sent on as they came.

A worker serves one kind of request (serving/worker.py); everything else on its
connections (the control plane, other services, the AI gateway, health, code
downloads, an Invoke it cannot decide) goes to the primary over the primary's Unix
socket, byte for byte where it matters: the method, the target, every header (Host
and the SigV4 signature too, so the primary checks the caller itself) and the body.
The one header added is the client's address (`x-lamina-client`), which the primary
believes only on that socket (protocols/http_direct.py). Answers come back whole on
the direct lane and streamed on ASGI's (the gateway's server-sent events).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from lamina.gateway.http1 import Connection, HTTPError
from lamina.protocols.asgi import read_body
from lamina.protocols.http_direct import FORWARDED_CLIENT
from lamina.protocols.wire import HttpResponse

# Longer than the longest invocation (900 s): a forwarded Invoke waits as long as it runs.
TIMEOUT_S = 960.0
_CLIENT = FORWARDED_CLIENT.decode()
# Hop-by-hop, or set again by the worker's own HTTP server for its client.
_REQUEST_DROPPED = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", _CLIENT}
)
_RESPONSE_DROPPED = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"}
)
# Streamed, the length (when the primary gave one) stays: the worker's server then does
# not chunk the answer.
_STREAM_DROPPED = _RESPONSE_DROPPED - {"content-length"}

Scope = MutableMapping[str, Any]


class Forwarder:
    def __init__(
        self, socket_path: str, *, max_idle: int = 64, timeout_s: float = TIMEOUT_S
    ) -> None:
        self._path = socket_path
        self._max_idle = max_idle
        self._timeout_s = timeout_s
        self._idle: list[Connection] = []
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def whole(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> HttpResponse:
        """One request, answered whole (the direct lane's shape)."""
        target = f"{path}?{query}" if query else path
        try:
            async with self._exchange(method, target, headers, body, source_ip) as connection:
                raw = await connection.head(self._timeout_s)
                status = connection.status
                data = b"" if method == "HEAD" else await _read(connection, self._timeout_s)
        except HTTPError as exc:
            return _unavailable(exc)
        response_headers: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1")
            if key.lower() not in _RESPONSE_DROPPED:
                response_headers[key] = value.decode("latin-1")
        return HttpResponse(status, response_headers, data)

    async def asgi(self, scope: Scope, receive: Any, send: Any) -> None:
        """An ASGI app that forwards the request and streams the answer back."""
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        client = scope.get("client")
        method: str = scope["method"]
        try:
            async with self._exchange(
                method, target.decode("latin-1"), headers, body, client[0] if client else ""
            ) as connection:
                raw = await connection.head(self._timeout_s)
                out = [
                    (k.lower(), v)
                    for k, v in raw
                    if k.decode("latin-1").lower() not in _STREAM_DROPPED
                ]
                await send(
                    {"type": "http.response.start", "status": connection.status, "headers": out}
                )
                if method != "HEAD":
                    async for chunk in connection.chunks(self._timeout_s):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except HTTPError as exc:
            failed = _unavailable(exc)
            await send(
                {
                    "type": "http.response.start",
                    "status": failed.status,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": failed.body})
            return
        await send({"type": "http.response.body", "body": b""})

    @asynccontextmanager
    async def _exchange(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> AsyncIterator[Connection]:
        head = [f"{method} {target} HTTP/1.1"]
        head += [f"{k}: {v}" for k, v in headers if k.lower() not in _REQUEST_DROPPED]
        head += [f"{_CLIENT}: {source_ip}", f"content-length: {len(body)}"]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        connection = self._pooled()
        reused = connection is not None
        if connection is None:
            connection = await self._connect()
        try:
            connection.send(data)
            try:
                await connection.head(self._timeout_s)
            except HTTPError:
                if not reused or connection.received_any:
                    raise
                # A pooled connection the primary had closed: nothing was read, so send again.
                connection.close()
                connection = await self._connect()
                connection.send(data)
                await connection.head(self._timeout_s)
            yield connection
        except BaseException:
            connection.close()
            raise
        self._release(connection, method)

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_unix_connection(Connection, self._path)
        except OSError as exc:
            raise HTTPError(f"the primary is not answering on {self._path}: {exc}") from exc
        return connection

    def _pooled(self) -> Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    def _release(self, connection: Connection, method: str) -> None:
        # A HEAD's answer announces a body it does not carry: the parser would wait for it.
        if (
            method != "HEAD" and connection.reusable and not self._closed
            and len(self._idle) < self._max_idle
        ):  # fmt: skip
            self._idle.append(connection)
        else:
            connection.close()


async def _read(connection: Connection, timeout_s: float) -> bytes:
    return b"".join([chunk async for chunk in connection.chunks(timeout_s)])


def _unavailable(exc: Exception) -> HttpResponse:
    return HttpResponse(
        503,
        {"Content-Type": "text/plain"},
        f"lamina's primary process did not answer: {exc}".encode(),
    )
