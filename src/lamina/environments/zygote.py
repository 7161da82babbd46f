"""lamina's side of a Python runtime's fork server (see runtimes/python/zygote.py).

The zygote is its own single-threaded process — lamina never forks itself, since it
has an event loop, threads and sockets. It forks children on request over a
SOCK_SEQPACKET socketpair, reaps them and reports their exit codes. Should the zygote
itself die, each child is also watched through a pidfd, so an environment never
outlives lamina's knowledge of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

ZYGOTE_SCRIPT = Path(__file__).resolve().parent.parent / "runtimes" / "python" / "zygote.py"
# When a pidfd says a child is gone but the zygote never reported its status (the zygote
# died with it), the code is unknown; report it as killed.
_LOST_CODE = -signal.SIGKILL

log = logging.getLogger("lamina.zygote")


class ZygoteUnavailable(RuntimeError):
    pass


class ForkedChild:
    """A process forked by a zygote: the same `pid` / `wait()` as asyncio's Process."""

    def __init__(self, pid: int, exited: asyncio.Future[int]) -> None:
        self.pid = pid
        self._exited = exited
        self._pidfd = -1
        with contextlib.suppress(OSError):
            self._pidfd = os.pidfd_open(pid)
            asyncio.get_running_loop().add_reader(self._pidfd, self._on_pidfd)

    def _on_pidfd(self) -> None:
        loop = asyncio.get_running_loop()
        self._close_pidfd()
        # The zygote's report (with the real code) normally arrives at the same moment.
        loop.call_later(0.5, self._settle, _LOST_CODE)

    def _settle(self, code: int) -> None:
        if not self._exited.done():
            self._exited.set_result(code)

    def _close_pidfd(self) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1

    async def wait(self) -> int:
        try:
            return await asyncio.shield(self._exited)
        finally:
            if self._exited.done():
                self._close_pidfd()


class Zygote:
    def __init__(self, python: str, preload: Sequence[str], env: Mapping[str, str]) -> None:
        self.python = python
        self._preload = tuple(preload)
        self._env = dict(env)
        self._sock: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[int] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}

    @property
    def alive(self) -> bool:
        return (
            self._process is not None
            and self._process.returncode is None
            and self._sock is not None
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = await asyncio.create_subprocess_exec(
                self.python, "-s", "-u", str(ZYGOTE_SCRIPT), str(theirs.fileno()), *self._preload,
                pass_fds=(theirs.fileno(),), env=self._env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=None, start_new_session=True,
            )  # fmt: skip
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_message)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), 60)
        except (TimeoutError, ZygoteUnavailable) as exc:
            self.close()
            raise ZygoteUnavailable(f"zygote for {self.python} did not start: {exc}") from exc

    async def fork(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str, out_fd: int
    ) -> ForkedChild:
        if not self.alive or self._sock is None:
            raise ZygoteUnavailable(f"zygote for {self.python} is not running")
        request_id = next(self._ids)
        reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        message = orjson.dumps({"id": request_id, "argv": list(argv), "env": dict(env), "cwd": cwd})
        try:
            socket.send_fds(self._sock, [message], [out_fd])
        except OSError as exc:
            self._pending.pop(request_id, None)
            raise ZygoteUnavailable(f"zygote for {self.python}: {exc}") from exc
        pid = await reply
        exited = self._exits.setdefault(pid, asyncio.get_running_loop().create_future())
        return ForkedChild(pid, exited)

    def _on_message(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            message = orjson.loads(data)
            if "exit" in message:
                future = self._exits.pop(message["exit"], None)
                if future is None:  # exited before fork() registered it
                    future = asyncio.get_running_loop().create_future()
                    self._exits[message["exit"]] = future
                if not future.done():
                    future.set_result(int(message["code"]))
            elif "ready" in message and self._ready is not None and not self._ready.done():
                self._ready.set_result(int(message["ready"]))
            elif "id" in message:
                pending = self._pending.pop(message["id"], None)
                if pending is not None and not pending.done():
                    if "pid" in message:
                        pending.set_result(int(message["pid"]))
                    else:
                        pending.set_exception(ZygoteUnavailable(str(message.get("error"))))

    def _lost(self) -> None:
        """The zygote went away: fail what waits on it; children are left to their pidfds."""
        log.warning("zygote for %s exited", self.python)
        self._detach()
        error = ZygoteUnavailable(f"zygote for {self.python} exited")
        for future in [*self._pending.values(), *([self._ready] if self._ready else [])]:
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def _detach(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self._detach()
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
