"""lamina's side of the Python fork servers (see runtimes/python/zygote.py).

A zygote is its own single-threaded process — lamina never forks itself, since it has
an event loop, threads and sockets. It forks children on request over a
SOCK_SEQPACKET socketpair, reaps them and reports their exit codes. A SnapStart
template is a child of a zygote that ran the function's init and then serves the same
protocol on a socket of its own. Each forked child is also watched through a pidfd,
so an environment never outlives lamina's knowledge of it even if its parent dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

ZYGOTE_SCRIPT = Path(__file__).resolve().parent.parent / "runtimes" / "python" / "zygote.py"
# A pidfd says a child is gone but no parent reported its status (the parent died with
# it): the code is unknown; report it as killed.
_LOST_CODE = -signal.SIGKILL

log = logging.getLogger("lamina.zygote")


class ZygoteUnavailable(RuntimeError):
    pass


class TemplateInitError(RuntimeError):
    """The function's init failed while a SnapStart template was being made."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(str(error.get("errorMessage", "")))
        self.error = dict(error)


class ForkedChild:
    """A process forked by a fork server: the same `pid` / `wait()` as asyncio's Process."""

    def __init__(self, pid: int, exited: asyncio.Future[int]) -> None:
        self.pid = pid
        self._exited = exited
        # Told its pid once its first invocation has ended (prefault.py).
        self.on_started: Callable[[int], None] | None = None
        self._pidfd = -1
        with contextlib.suppress(OSError):
            self._pidfd = os.pidfd_open(pid)
            asyncio.get_running_loop().add_reader(self._pidfd, self._on_pidfd)

    def _on_pidfd(self) -> None:
        self._close_pidfd()
        # The parent's report (with the real code) normally arrives at the same moment.
        asyncio.get_running_loop().call_later(0.5, self._settle, _LOST_CODE)

    def _settle(self, code: int) -> None:
        if not self._exited.done():
            self._exited.set_result(code)

    def _close_pidfd(self) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1

    @property
    def running(self) -> bool:
        return not self._exited.done()

    def started(self) -> None:
        """Its first invocation has ended (an environment forked with no sandbox)."""
        if self.on_started is not None:
            on_started, self.on_started = self.on_started, None
            on_started(self.pid)

    def detach(self) -> None:
        """Stop watching: another handle on the same process (a stem taken) watches it."""
        self._close_pidfd()

    async def wait(self) -> int:
        try:
            return await asyncio.shield(self._exited)
        finally:
            if self._exited.done():
                self._close_pidfd()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


class ForkServer:
    """The client of one fork server (a zygote or a template) over its control socket."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.name = name
        self._sock: socket.socket | None = sock
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._on_message)

    @property
    def open(self) -> bool:
        return self._sock is not None

    async def fork(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        out_fd: int,
        sandbox: Mapping[str, Any] | None = None,
        channel_fd: int | None = None,
        stem: str | None = None,
    ) -> ForkedChild:
        """Fork an environment; `sandbox` is the plan its child enters (sandbox.py),
        `channel_fd` the runtime's end of its private channel (runtime_channel.py),
        `stem` the parked stem (see `stem`) that becomes it instead of a new fork."""
        body: dict[str, Any] = {"argv": list(argv), "env": dict(env), "cwd": cwd}
        if sandbox:
            body["sandbox"] = sandbox
        if stem is not None:
            body["use_stem"] = stem
        if channel_fd is None:
            return await self._request(body, [out_fd])
        body["channel"] = True
        return await self._request(body, [out_fd, channel_fd])

    async def stem(
        self, name: str, join: Sequence[str], pidns: bool, bare: bool = False
    ) -> ForkedChild:
        """Park a stem: a child forked now that joins the cgroups whose `cgroup.procs`
        files are `join` (in a PID namespace of its own with `pidns`), then waits for a
        fork request naming it. `bare`: for an environment with no sandbox."""
        body = {"stem": name, "join": list(join), "pidns": pidns, "bare": bare}
        return await self._request(body, [])

    async def template(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        out_fd: int,
        sandbox: Mapping[str, Any] | None = None,
    ) -> tuple[ForkedChild, ForkServer]:
        """Fork a SnapStart template; returns it once its init is done (or raises).
        `sandbox`: the plan it runs its init in (sandbox.py, templates)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        body: dict[str, Any] = {"template": True, "argv": list(argv), "env": dict(env), "cwd": cwd}
        if sandbox:
            body["sandbox"] = sandbox
        try:
            child = await self._request(body, [out_fd, theirs.fileno()])
        finally:
            theirs.close()
        server = ForkServer(ours, f"{self.name} template {child.pid}")
        try:
            await server.ready
        except BaseException:
            server.close()
            child.kill()
            raise
        return child, server

    async def prefault(self, ranges: list[list[int]]) -> None:
        """Have the stems parked from now on copy these pages ([address, length]) before
        they wait: what a new environment is known to write (prefault.py)."""
        await self._ask({"prefault": ranges}, [])

    async def prepare(self, plan: Mapping[str, Any]) -> None:
        """Have the zygote build its children's shared sandbox root now (`plan`:
        Sandbox.base_plan), instead of on its first sandboxed fork while a caller waits."""
        await self._ask({"prepare": dict(plan)}, [])

    async def _request(self, body: dict[str, Any], fds: list[int]) -> ForkedChild:
        pid = await self._ask(body, fds)
        exited = self._exits.setdefault(pid, asyncio.get_running_loop().create_future())
        return ForkedChild(pid, exited)

    async def _ask(self, body: dict[str, Any], fds: list[int]) -> int:
        """Send a request and wait for its reply's pid."""
        if self._sock is None:
            raise ZygoteUnavailable(f"{self.name} is not running")
        request_id = next(self._ids)
        reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        try:
            await self._send(orjson.dumps({"id": request_id, **body}), fds)
        except OSError as exc:
            self._pending.pop(request_id, None)
            raise ZygoteUnavailable(f"{self.name}: {exc}") from exc
        return await reply

    async def _send(self, message: bytes, fds: list[int]) -> None:
        """Send one request; in a burst the socket's buffer fills (EAGAIN): retry until
        the zygote has read some, rather than giving up on forking. (A short sleep, not
        add_writer: the reader of this same socket must stay registered undisturbed.)"""
        delay = 0.001
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            if self._sock is None:
                raise ZygoteUnavailable(f"{self.name} is not running")
            try:
                socket.send_fds(self._sock, [message], fds)
                return
            except BlockingIOError:
                if asyncio.get_running_loop().time() > deadline:
                    raise ZygoteUnavailable(f"{self.name} stopped reading requests") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _on_message(self) -> None:
        while self._sock is not None:
            try:
                data = self._sock.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._handle(orjson.loads(data))

    def _handle(self, message: dict[str, Any]) -> None:
        if "exit" in message:
            future = self._exits.get(message["exit"])
            if future is None:  # exited before _request registered it
                future = self._exits[message["exit"]] = asyncio.get_running_loop().create_future()
            if not future.done():
                future.set_result(int(message["code"]))
            if self._exits.get(message["exit"]) is future and future.done():
                del self._exits[message["exit"]]
        elif "ready" in message:
            if not self.ready.done():
                self.ready.set_result(message)
        elif "error" in message and "id" not in message:
            if not self.ready.done():
                self.ready.set_exception(TemplateInitError(message["error"]))
        elif "id" in message:
            pending = self._pending.pop(message["id"], None)
            if pending is not None and not pending.done():
                if "pid" in message:
                    pending.set_result(int(message["pid"]))
                else:
                    pending.set_exception(ZygoteUnavailable(str(message.get("error"))))

    def _lost(self) -> None:
        """The server went away: fail what waits on it; children are left to their pidfds."""
        self.close()
        error = ZygoteUnavailable(f"{self.name} exited")
        waiting: list[asyncio.Future[Any]] = [*self._pending.values(), self.ready]
        for future in waiting:
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


class Zygote:
    """A runtime's zygote process: an interpreter with the runtime client preloaded."""

    def __init__(
        self,
        python: str,
        preload: Sequence[str],
        env: Mapping[str, str],
        preexec: Callable[[], None] | None = None,  # run in the child before exec
    ) -> None:
        self.python = python
        self._preexec = preexec
        self._preload = tuple(preload)
        self._env = dict(env)
        self._process: asyncio.subprocess.Process | None = None
        self.server: ForkServer | None = None

    @property
    def alive(self) -> bool:
        return (
            self._process is not None
            and self._process.returncode is None
            and self.server is not None
            and self.server.open
        )

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = await asyncio.create_subprocess_exec(
                self.python, "-s", "-u", str(ZYGOTE_SCRIPT), str(theirs.fileno()), *self._preload,
                pass_fds=(theirs.fileno(),), env=self._env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=None, start_new_session=True,
                preexec_fn=self._preexec,
            )  # fmt: skip
        finally:
            theirs.close()
        self.server = ForkServer(ours, f"zygote for {self.python}")
        try:
            await asyncio.wait_for(asyncio.shield(self.server.ready), 60)
        except (TimeoutError, ZygoteUnavailable) as exc:
            self.close()
            raise ZygoteUnavailable(f"zygote for {self.python} did not start: {exc}") from exc

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
