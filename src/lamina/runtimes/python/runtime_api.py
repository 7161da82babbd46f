"""A keep-alive HTTP/1.1 client for the Lambda Runtime API (2018-06-01).

Written over `socket` rather than `http.client` on purpose: `http.client` pulls in
the `email` package (and `ssl`), about 20 ms of every cold start, and builds several
objects per request on the warm-invoke path, which this client crosses twice per
invocation. The peer is lamina's Runtime API (or Lambda's own), so the subset of
HTTP needed is small: requests with a Content-Length, responses framed by
Content-Length or chunked, keep-alive, and one reconnect when an idle connection
was closed under us.
"""

from __future__ import annotations

import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
XRAY_ERROR_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"
_LINE_MAX = 65536 + 2


class HostGone(Exception):
    """The Runtime API cannot be reached any more: the host ended this environment."""


class RuntimeApiError(Exception):
    """The Runtime API answered with a status the protocol does not allow here."""

    def __init__(self, path: str, response: Response) -> None:
        super().__init__(
            f"Request to Lambda Runtime '{path}' endpoint failed. "
            f"Reason: '{response.status}'. Response body: '{response.body!r}'"
        )
        self.response = response


class _Closed(Exception):
    """The peer closed the connection before a whole response arrived."""


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers  # names lower-cased
        self.body = body


class RuntimeApiClient:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        # The host as bytes: getaddrinfo() runs a str host through the idna codec, whose
        # import (with stringprep and unicodedata) would be a few ms of every cold start.
        self._address = ((host or "127.0.0.1").encode("ascii"), int(port))
        version = ".".join(map(str, sys.version_info[:3]))
        self._common = f"Host: {address}\r\nUser-Agent: lamina-python/{version}\r\n"
        self._next = f"GET {PREFIX}/invocation/next HTTP/1.1\r\n{self._common}\r\n".encode()
        self._sock: socket.socket | None = None
        self._rfile: BinaryIO | None = None
        self._close_after = False

    # The four endpoints.

    def next_invocation(self) -> Response:
        response = self._exchange(self._next)
        if response.status != 200:
            raise RuntimeApiError("next", response)
        return response

    def post_response(self, request_id: str, body: bytes, content_type: str) -> Response:
        return self._post(
            f"/invocation/{request_id}/response", body, f"Content-Type: {content_type}\r\n"
        )

    def post_error(
        self, request_id: str, body: bytes, error_type: str, xray_cause: str | None
    ) -> Response:
        extra = f"Content-Type: application/json\r\n{ERROR_TYPE_HEADER}: {error_type}\r\n"
        if xray_cause:
            extra += f"{XRAY_ERROR_CAUSE_HEADER}: {xray_cause}\r\n"
        return self._post(f"/invocation/{request_id}/error", body, extra)

    def post_init_error(self, body: bytes, error_type: str) -> Response:
        extra = f"Content-Type: application/json\r\n{ERROR_TYPE_HEADER}: {error_type}\r\n"
        return self._post("/init/error", body, extra)

    def close(self) -> None:
        sock, self._sock, self._rfile = self._sock, None, None
        if sock is not None:
            try:  # noqa: SIM105 - contextlib would be one more import at every cold start
                sock.close()
            except OSError:
                pass

    # HTTP.

    def _post(self, path: str, body: bytes, extra_headers: str) -> Response:
        head = (
            f"POST {PREFIX}{path} HTTP/1.1\r\n{self._common}{extra_headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        # One write for head and body: with TCP_NODELAY, two writes would be two packets.
        return self._exchange(head.encode("utf-8", "surrogateescape") + body)

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection(self._address)  # no timeout: /next long-polls
        except OSError as exc:
            raise HostGone(str(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._rfile = sock, sock.makefile("rb")
        return sock

    def _exchange(self, request: bytes) -> Response:
        for _ in range(2):
            sock = self._sock
            reused = sock is not None
            if sock is None:
                sock = self._connect()
            try:
                sock.sendall(request)
                response = self._read_response()
            except (OSError, _Closed, ValueError):
                self.close()
                if reused:
                    continue  # an idle keep-alive connection the host had closed: retry once
                raise HostGone("connection to the Runtime API lost") from None
            if self._close_after:
                self.close()
            return response
        raise HostGone("connection to the Runtime API lost")

    def _read_response(self) -> Response:
        rfile = self._rfile
        while True:
            line = rfile.readline(_LINE_MAX)
            if not line:
                raise _Closed
            version, status_text = line.split(None, 2)[:2]
            status = int(status_text)
            headers: dict[str, str] = {}
            while True:
                line = rfile.readline(_LINE_MAX)
                if line in (b"\r\n", b"\n"):
                    break
                if not line:
                    raise _Closed
                name, _, value = line.partition(b":")
                # Values may carry UTF-8 (the client context is JSON text).
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode(
                    "utf-8", "replace"
                )
            if status >= 200:
                break  # 1xx interim responses are skipped
        connection = headers.get("connection", "").lower()
        self._close_after = connection == "close" or (
            version == b"HTTP/1.0" and connection != "keep-alive"
        )
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body = rfile.read(length) if length else b""
            if len(body) < length:
                raise _Closed
        elif status in (204, 304):
            body = b""
        else:
            body = rfile.read()  # delimited by the peer closing
            self._close_after = True
        return Response(status, headers, body)

    def _read_chunked(self) -> bytes:
        rfile = self._rfile
        parts = []
        while True:
            line = rfile.readline(_LINE_MAX)
            if not line:
                raise _Closed
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while line not in (b"\r\n", b"\n"):  # trailers, then the blank line
                    line = rfile.readline(_LINE_MAX)
                    if not line:
                        raise _Closed
                return b"".join(parts)
            chunk = rfile.read(size)
            if len(chunk) < size:
                raise _Closed
            parts.append(chunk)
            rfile.readline(_LINE_MAX)
