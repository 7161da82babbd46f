"""lamina's private channel to the built-in runtime: the Runtime API's four calls as
length-prefixed frames on a Unix socket pair, instead of HTTP on a loopback port.

Why: a warm invocation crosses the Runtime API twice. Over HTTP that is two request
writes and two response reads here, HTTP parsing on both sides, and a `202` the host
must write back for every result. Here it is one write (the result, with the ask for
the next event in the same write) and one read (the next event). The standard Runtime
API stays served for the same environment — custom runtimes and awslambdaric use it,
and `AWS_LAMBDA_RUNTIME_API` is still set.

A frame is a 4-byte big-endian length, one kind byte, then the body; the server side
is lamina/environments/runtime_channel.py, which documents the kinds.
"""

from __future__ import annotations

import os
import socket
import struct

from .runtime_api import HostGone, Response

_HEAD = struct.Struct("!IB")
_NEXT = _HEAD.pack(0, ord("X"))
_ACCEPTED = Response(202, {}, b'{"status":"OK"}')
_SEP = b"\x00"
_FIRST_READ = 65536


class ChannelClient:
    """Same calls as RuntimeApiClient, over an inherited socket fd."""

    def __init__(self, fd: int) -> None:
        self._sock: socket.socket | None = socket.socket(fileno=fd)
        self._sock.setblocking(True)
        self._sock.set_inheritable(False)  # not for programs the function runs
        self._out: list[bytes] = []  # results not yet sent: they go with the next ask
        self._surplus = b""  # read past the end of the last frame
        # Where to wait for the next event: the host's CPU while it is lightly loaded
        # (lamina/environments/colocation.py), so the hand-over wakes no other CPU.
        self._wait_on: tuple[int, ...] = ()
        try:
            self._cpus: set[int] | None = os.sched_getaffinity(0)
        except AttributeError:  # not Linux: no hints taken
            self._cpus = None

    def next_invocation(self) -> Response:
        sock = self._require()
        self._out.append(_NEXT)
        out, self._out = b"".join(self._out), []
        try:
            sock.sendall(out)
            # Pinned after the send: the result is on its way a syscall sooner.
            waited_pinned = bool(self._wait_on) and self._set_cpus(self._wait_on)
            kind, body = self._next_frame(sock)
        except OSError:
            raise HostGone("channel to lamina lost") from None
        if kind != ord("I"):
            raise HostGone(f"unexpected frame {kind!r} on the runtime channel")
        fields = body.split(_SEP, 7)
        if len(fields) != 8:
            raise HostGone("malformed invocation frame on the runtime channel")
        rid, deadline, arn, trace, client_context, cognito, cpu, payload = fields
        self._wait_on = self._hint(cpu)
        if waited_pinned and self._cpus is not None:
            # Only the wait is pinned: the handler, and any thread or program it starts
            # (which inherit the mask), may use every CPU.
            self._set_cpus(self._cpus)
        headers = {
            "content-type": "application/json",
            "lambda-runtime-aws-request-id": rid.decode(),
            "lambda-runtime-deadline-ms": deadline.decode(),
            "lambda-runtime-invoked-function-arn": arn.decode(),
        }
        if trace:
            headers["lambda-runtime-trace-id"] = trace.decode()
        if client_context:
            headers["lambda-runtime-client-context"] = client_context.decode("utf-8", "replace")
        if cognito:
            headers["lambda-runtime-cognito-identity"] = cognito.decode("utf-8", "replace")
        return Response(200, headers, payload)

    def _hint(self, cpu: bytes) -> tuple[int, ...]:
        if self._cpus is None or cpu == b"-1":
            return ()
        try:
            wanted = int(cpu)
        except ValueError:
            return ()
        return (wanted,) if wanted in self._cpus else ()

    def _set_cpus(self, cpus: tuple[int, ...] | set[int]) -> bool:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:  # a cpuset or a policy refuses: take no more hints
            self._cpus, self._wait_on = None, ()
            return False
        return True

    def post_response(self, request_id: str, body: bytes, content_type: str) -> Response:
        self._queue(b"R", request_id.encode() + _SEP + content_type.encode() + _SEP + body)
        return _ACCEPTED

    def post_error(
        self, request_id: str, body: bytes, error_type: str, xray_cause: str | None
    ) -> Response:
        head = request_id.encode() + _SEP + error_type.encode("utf-8", "replace") + _SEP
        self._queue(b"E", head + body)
        return _ACCEPTED

    def post_init_error(self, body: bytes, error_type: str) -> Response:
        # Sent at once: the process exits right after reporting.
        self._queue(b"F", error_type.encode("utf-8", "replace") + _SEP + body)
        sock = self._require()
        out, self._out = b"".join(self._out), []
        try:
            sock.sendall(out)
        except OSError:
            raise HostGone("channel to lamina lost") from None
        return _ACCEPTED

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:  # noqa: SIM105 - contextlib would be one more import at every cold start
                sock.close()
            except OSError:
                pass

    def _queue(self, kind: bytes, body: bytes) -> None:
        self._out.append(_HEAD.pack(len(body), kind[0]) + body)

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise HostGone("runtime channel closed")
        return self._sock

    def _next_frame(self, sock: socket.socket) -> tuple[int, bytes]:
        # One recv takes a whole event of ordinary size (a second syscall per
        # invocation otherwise); a larger one is read to its end in one more.
        data = self._surplus
        if len(data) < _HEAD.size or len(data) < _HEAD.size + _HEAD.unpack_from(data)[0]:
            chunk = sock.recv(_FIRST_READ)
            if not chunk:
                raise OSError("channel closed")
            data += chunk
        if len(data) < _HEAD.size:
            data += self._read(_HEAD.size - len(data))
        length, kind = _HEAD.unpack_from(data)
        end = _HEAD.size + length
        if len(data) < end:
            data += self._read(end - len(data))
        self._surplus = data[end:]
        return kind, data[_HEAD.size : end]

    def _read(self, size: int) -> bytes:
        data = self._require().recv(size, socket.MSG_WAITALL)
        if len(data) < size:  # the host closed its end: this environment is over
            raise OSError("short read")
        return data
