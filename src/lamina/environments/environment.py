"""One execution environment: a process running one function version.

The process speaks the Runtime API to its own `RuntimeApiServer`; its stdout and
stderr share one pipe that lamina reads without blocking. Everything written between
an invocation's delivery and its response belongs to that invocation's log. The
runtime flushes its output before posting the response, so draining the pipe when
the response arrives captures all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from lamina.environments.lifecycle import EnvState, check_transition
from lamina.environments.logs import (
    INVOCATION_LOG_MAX,
    LineSplitter,
    LogSink,
    Report,
    end_line,
    log_group,
    log_stream,
    start_line,
    tail,
)
from lamina.environments.memory_use import MemoryUse
from lamina.environments.process import Child, ExecSpawner, LaunchSpec, Spawner
from lamina.environments.runtime_api import (
    ACCEPTED,
    Deliver,
    Invocation,
    Reply,
    RuntimeApiServer,
    error_reply,
)
from lamina.environments.runtime_channel import RuntimeChannel
from lamina.environments.sandbox import OOM_ERROR
from lamina.functions.model import FunctionConfig

RESPONSE_MAX = 6 * 1024 * 1024
_OUTPUT_CHUNK = 65536  # bytes of stdout/stderr taken per read


@dataclass(frozen=True, slots=True)
class InvocationResult:
    """How an invocation ended. Its END and REPORT lines are written on the loop's next
    turn, once the answer is on its way (`Environment._finish`); reading `log_lines`,
    `log_tail` or `max_memory_mb` writes them at once."""

    payload: bytes
    function_error: str | None  # "Unhandled" when the function failed, as X-Amz-Function-Error
    duration_ms: float
    init_duration_ms: float | None
    settle: Callable[[], Report]  # writes END and REPORT (once); returns the REPORT
    lines: list[tuple[int, str]]  # (epoch ms, line); complete once settled

    @property
    def log_lines(self) -> list[tuple[int, str]]:
        """(epoch ms, line), START to REPORT."""
        self.settle()
        return self.lines

    @property
    def max_memory_mb(self) -> int:
        return self.settle().max_memory_mb

    @property
    def log_tail(self) -> str:
        """The last 4 KB of the log (`LogType=Tail`): built only when asked for."""
        return tail([line for _, line in self.log_lines])


@dataclass(slots=True)
class _InFlight:
    invocation: Invocation
    # Set when the invocation ends; the invoking task awaits it. Not shielded: the
    # answer is kept in `result`, so a cancelled wait loses nothing, and a shield
    # would cost a turn of the loop on every invocation's way back.
    waiter: asyncio.Future[None]
    result: tuple[bytes, bool] | None = None  # (payload, is_error)
    lines: list[tuple[int, str]] = field(default_factory=list)  # (epoch ms, line)
    log_bytes: int = 0
    delivered_at: float | None = None
    status: str | None = None
    duration_ms: float = 0.0
    init_duration_ms: float | None = None
    report: Report | None = None  # once END and REPORT are written
    timer: asyncio.TimerHandle | None = None  # the timeout, from the hand-over

    def end(self, payload: bytes, is_error: bool) -> None:
        self.result = (payload, is_error)
        if not self.waiter.done():
            self.waiter.set_result(None)


class Environment:
    def __init__(
        self,
        env_id: str,
        config: FunctionConfig,
        logs: LogSink,
        clock: Callable[[], float] = time.monotonic,
        spawner: Spawner | None = None,
        restored: bool = False,
        runtime_channel: bool = True,
    ) -> None:
        self.id = env_id
        self._use_channel = runtime_channel
        self.restored = restored
        # Kept warm by provisioned concurrency: never reaped for idleness.
        self.provisioned = False
        # Called when an invocation ends and the environment is idle again (the pool).
        self.on_idle: Callable[[Environment], None] | None = None
        self._spawner: Spawner = spawner or ExecSpawner()
        self.config = config
        self.state = EnvState.STARTING
        self.idle_since = 0.0
        self._logs = logs
        self._clock = clock
        self._group = log_group(config.name)
        self._stream = log_stream(config.version, env_id)
        self._api = RuntimeApiServer(self)
        self._channel: RuntimeChannel | None = None
        self._process: Child | None = None
        self._pid = 0
        self._memory = MemoryUse()
        self._pipe = -1
        # Whether the last read of the pipe emptied it (see `_finish`).
        self._output_drained = False
        self._splitter = LineSplitter()
        self._pending_lines: list[tuple[int, str]] = []  # output outside any invocation
        self._waiter: Deliver | None = None  # the runtime, waiting for its next event
        self._queued: Invocation | None = None
        self._current: _InFlight | None = None
        self._unsettled: _InFlight | None = None  # ended; END and REPORT not yet written
        self._spawned_at = 0.0
        # The loop, looked up once: on Python 3.11 each get_running_loop() is a getpid()
        # syscall, and the invoke path would ask twice per invocation.
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()  # first /next, or failure
        self._init_duration_ms: float | None = None
        self._init_reported = False
        self._init_error: bytes | None = None
        self._tmp: Path | None = None
        self._exit_task: asyncio.Task[None] | None = None
        self._orphan: asyncio.Task[None] | None = None
        self.exit_status: str | None = None

    # ----------------------------------------------------------------- lifecycle

    async def start(self, spec_for: Callable[[str], LaunchSpec]) -> None:
        """Launch the process; `spec_for(runtime_api_address)` builds its argv and env."""
        address = await self._api.start()
        spec = spec_for(address)
        self._tmp = spec.tmp_dir
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._spawned_at = self._clock()
        phase = "RESTORE_START" if self.restored else "INIT_START"
        self._emit_platform(
            f"{phase} Runtime Version: {self.config.runtime} Environment: {self.id}"
        )
        theirs = await self._open_channel() if spec.python and self._use_channel else None
        try:
            self._process = await self._spawner.spawn(
                spec, write_fd, theirs.fileno() if theirs is not None else None
            )
        except OSError as exc:
            os.close(read_fd)
            self._fail_init(
                "Runtime.InvalidEntrypoint",
                f"RequestId: Error: fork/exec {spec.argv[0]}: {exc.strerror or exc}",
            )
            self._stop_now()
            return
        finally:
            os.close(write_fd)
            if theirs is not None:
                theirs.close()
        self._pid = self._process.pid
        self._memory.watch(self._process)
        self._pipe = read_fd
        self._loop.add_reader(read_fd, self._read_output)
        # Owned by the environment: `exited` lets the pool and tests await the end.
        self._exit_task = self._loop.create_task(self._watch_exit(self._process))

    async def _open_channel(self) -> socket.socket:
        """The built-in runtime's private channel; returns the runtime's end."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        _, channel = await self._loop.connect_accepted_socket(lambda: RuntimeChannel(self), ours)
        self._channel = channel
        return theirs

    def stop(self) -> None:
        """Kill the process group and release everything; safe to call twice."""
        if self.state is not EnvState.STOPPED:
            self._stop_now()

    def _stop_now(self) -> None:
        self.state = EnvState.STOPPED
        if self._pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, signal.SIGKILL)
        self._api.close()
        if self._channel is not None:
            self._channel.close()
        self._waiter = None
        if not self._ready.done():
            self._ready.set_result(None)
        self._flush_pending()

    def _set_state(self, target: EnvState) -> None:
        check_transition(self.state, target)
        self.state = target

    async def warm(self, timeout_s: float) -> str | None:
        """Wait for init to finish with no invocation (a pre-warmed start); returns why
        it failed, or None when the environment is idle and ready."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        if self.alive and self.state is EnvState.IDLE:
            self._init_reported = True  # its first invocation is warm: no Init Duration
            return None
        reason = "init timed out" if self.alive else f"init failed ({self.exit_status or 'exited'})"
        if self._init_error is not None:
            with contextlib.suppress(orjson.JSONDecodeError):
                reason = str(orjson.loads(self._init_error).get("errorMessage", reason))
        self.stop()
        return reason

    def memory(self) -> dict[str, int]:
        """Resident memory in KiB: rss, pss and uss (memory_use.py)."""
        return self._memory.resident()

    @property
    def pid(self) -> int:
        return self._pid

    async def exited(self) -> None:
        """Wait until the process is gone and its resources are released."""
        if self._exit_task is not None:
            await asyncio.shield(self._exit_task)

    @property
    def started_at(self) -> float:
        return self._spawned_at

    @property
    def log_stream_name(self) -> str:
        return self._stream

    @property
    def alive(self) -> bool:
        return self.state is not EnvState.STOPPED

    # ---------------------------------------------------------------- invocation

    async def invoke(self, invocation: Invocation, timeout_s: float) -> InvocationResult:
        """Run one invocation to its end: response, error, timeout or crash.

        The environment goes back to its pool (`on_idle`) when the invocation ends —
        also when the caller stops waiting (a cancelled request): the function's run
        is not cut short by a client that went away, as in Lambda.
        """
        self._set_state(EnvState.BUSY)
        inflight = _InFlight(invocation, self._loop.create_future())
        self._current = inflight
        self._flush_pending()
        cold = not self._init_reported
        try:
            await self._run(inflight, timeout_s)
        except asyncio.CancelledError:
            # The run goes on, owned by the environment like the exit watcher.
            self._orphan = self._loop.create_task(self._run_to_end(inflight, cold, timeout_s))
            raise
        return self._finish(inflight, cold)

    async def _run_to_end(self, inflight: _InFlight, cold: bool, timeout_s: float) -> None:
        await self._run(inflight, timeout_s)
        self._finish(inflight, cold)

    async def _run(self, inflight: _InFlight, timeout_s: float) -> None:
        """Init (unless done), the hand-over, the wait for the end. Each step is taken
        once, so a run whose caller stopped waiting picks up where it was."""
        if not self._ready.done():
            # Init gets Lambda's 10 s on-demand allowance (or the timeout, if longer).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._ready), max(10.0, timeout_s))
            if not self._ready.done():
                self._record_timeout(inflight)
        if inflight.timer is None and inflight.result is None:
            invocation = inflight.invocation
            if not self.alive:  # stopped while it started
                message = f"RequestId: {invocation.request_id} Error: Runtime exited without providing a reason"
                inflight.end(
                    orjson.dumps({"errorType": "Runtime.ExitError", "errorMessage": message}), True
                )
                return
            # The deadline runs from delivery: init time is not the handler's time.
            invocation.deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
            self._hand_over(invocation)
            # A timer, not wait_for: wait_for wraps the wait in a task of its own, a
            # cost on every warm invocation. It is the invocation's, cancelled when the
            # invocation ends, so a run whose caller left still times out.
            inflight.timer = self._loop.call_later(timeout_s, self._record_timeout, inflight)
        if inflight.result is None:
            if inflight.waiter.done():  # cancelled with its caller's wait
                inflight.waiter = self._loop.create_future()
            await inflight.waiter

    def _hand_over(self, invocation: Invocation) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            delivered_at = self._clock()
            if waiter(invocation):
                self._mark_delivered(delivered_at)
                return
        self._queued = invocation

    def _mark_delivered(self, at: float | None = None) -> None:
        if self._current is not None and self._current.delivered_at is None:
            self._current.delivered_at = self._clock() if at is None else at
            self._add_line(start_line(self._current.invocation.request_id, self.config.version))

    def _record_timeout(self, inflight: _InFlight) -> None:
        if inflight.result is not None:
            return
        seconds = self.config.timeout_s
        rid = inflight.invocation.request_id
        message = f"RequestId: {rid} Error: Task timed out after {seconds:.2f} seconds"
        if inflight.delivered_at is None:
            self._mark_delivered()
        self._add_line(
            f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}Z {rid} Task timed out after {seconds:.2f} seconds"
        )
        inflight.status = "timeout"
        inflight.end(orjson.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}), True)
        self._stop_now()

    def _finish(self, inflight: _InFlight, cold: bool) -> InvocationResult:
        # The runtime flushed its output before it answered, so what it wrote is in the
        # pipe before the answer is on its socket. An answer (status None) is read in
        # the loop's I/O phase, and the pipe, ready in the same poll, has had its
        # reader run before this task resumes: only a pipe left unemptied (a full
        # chunk read) needs reading here. A timeout ends from a timer, before any I/O
        # of its iteration, so it reads. (One read fewer per warm invocation.)
        if inflight.timer is not None:
            inflight.timer.cancel()
        if inflight.status is not None or not self._output_drained:
            self._read_output()
        assert inflight.result is not None
        payload, is_error = inflight.result
        ended = self._clock()
        if inflight.delivered_at is None:
            self._mark_delivered(ended)
        inflight.duration_ms = (ended - (inflight.delivered_at or ended)) * 1000.0
        inflight.init_duration_ms = self._init_duration_ms if cold else None
        if cold:
            started = getattr(self._process, "started", None)
            if callable(started):
                started()  # a new environment's pages, learned from (prefault.py)
        self._init_reported = True
        self._current = None
        # END and REPORT (with Max Memory Used, a read of the cgroup) wait for the loop's
        # next turn: by then the answer has been written to the caller, who gets it
        # ~30 µs sooner. A timeout or crash settles now, while its process is there.
        self._unsettled = inflight
        if inflight.status is None:
            self._loop.call_soon(self._settle, inflight)
        else:
            self._settle(inflight)
        if self.alive:
            self._set_state(EnvState.IDLE)
            self.idle_since = ended
        if self.on_idle is not None:
            self.on_idle(self)
        return InvocationResult(
            payload=payload,
            function_error="Unhandled" if is_error else None,
            duration_ms=inflight.duration_ms,
            init_duration_ms=inflight.init_duration_ms,
            settle=functools.partial(self._settle, inflight),
            lines=inflight.lines,
        )

    def _settle(self, inflight: _InFlight) -> Report:
        """Write an ended invocation's END and REPORT lines and send its log on; once."""
        if self._unsettled is inflight:
            self._unsettled = None
        if inflight.report is not None:
            return inflight.report
        rid = inflight.invocation.request_id
        report = inflight.report = Report(
            request_id=rid,
            duration_ms=inflight.duration_ms,
            memory_mb=self.config.memory_mb,
            max_memory_mb=self._memory.peak_mb(),
            init_duration_ms=inflight.init_duration_ms,
            restored=self.restored,
            status=inflight.status,
        )
        stamp = self._now_ms()
        inflight.lines += ((stamp, end_line(rid)), (stamp, report.line()))
        self._logs.append(self._group, self._stream, inflight.lines)
        return report

    # ------------------------------------------------------- Runtime API handler

    def next_invocation(self, deliver: Deliver) -> None:
        if not self._ready.done():
            self._init_duration_ms = (self._clock() - self._spawned_at) * 1000.0
            self._ready.set_result(None)
            if self.state is EnvState.STARTING:  # pre-warmed: init done, nothing queued
                self._set_state(EnvState.IDLE)
                self.idle_since = self._clock()
                self._read_output()
                self._flush_pending()  # its init output belongs in the log now, not later
        self._waiter = deliver
        if self._queued is not None:
            invocation, self._queued = self._queued, None
            self._hand_over(invocation)

    def invocation_response(self, request_id: str, body: bytes, too_large: bool) -> Reply:
        current = self._current_for(request_id)
        if current is None:
            return error_reply(400, "InvalidRequestID", "Invalid request ID")
        if too_large or len(body) > RESPONSE_MAX:
            size = max(len(body), RESPONSE_MAX + 1)
            message = f"Response payload size ({size} bytes) exceeded maximum allowed payload size ({RESPONSE_MAX} bytes)."
            current.end(
                orjson.dumps(
                    {"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message}
                ),
                True,
            )
            return error_reply(413, "Function.ResponseSizeTooLarge", message)
        current.end(body, False)
        return ACCEPTED

    def invocation_error(self, request_id: str, error_type: str | None, body: bytes) -> Reply:
        current = self._current_for(request_id)
        if current is None:
            return error_reply(400, "InvalidRequestID", "Invalid request ID")
        current.end(_error_body(error_type, body), True)
        return ACCEPTED

    def init_error(self, error_type: str | None, body: bytes) -> Reply:
        self._init_error = _error_body(error_type, body)
        if not self._ready.done():
            self._init_duration_ms = (self._clock() - self._spawned_at) * 1000.0
        self._fail_current(self._init_error)
        return ACCEPTED

    def _current_for(self, request_id: str) -> _InFlight | None:
        current = self._current
        if (
            current is None
            or current.result is not None
            or current.invocation.request_id != request_id
        ):
            return None
        return current

    # ------------------------------------------------------------ process events

    def _fail_init(self, error_type: str, message: str) -> None:
        self._init_error = orjson.dumps({"errorType": error_type, "errorMessage": message})
        self._fail_current(self._init_error)

    def _fail_current(self, body: bytes) -> None:
        if self._current is not None and self._current.result is None:
            self._current.end(body, True)
        if not self._ready.done():
            self._ready.set_result(None)

    async def _watch_exit(self, process: Child) -> None:
        code = await process.wait()
        self.exit_status = (
            f"signal: {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        )
        self._read_output()
        if self._current is not None and self._current.result is None:
            rid = self._current.invocation.request_id
            if self._init_error is not None:
                self._fail_current(self._init_error)
            else:
                # A sandboxed child knows whether its cgroup's OOM killer ended it.
                oom = getattr(process, "out_of_memory", None)
                error_type = OOM_ERROR if callable(oom) and oom() else "Runtime.ExitError"
                message = f"RequestId: {rid} Error: Runtime exited with error: {self.exit_status}"
                self._add_line(message)
                self._add_line(error_type)
                self._current.status = "error"
                self._fail_current(orjson.dumps({"errorType": error_type, "errorMessage": message}))
        if self.alive:
            self._stop_now()
        self._close_pipe()
        self._memory.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _read_output(self) -> None:
        if self._pipe < 0:
            return
        while True:
            try:
                chunk = os.read(self._pipe, _OUTPUT_CHUNK)
            except BlockingIOError:
                self._output_drained = True
                return
            except OSError:
                chunk = b""
            if not chunk:
                for line in self._splitter.flush():
                    self._add_line(line)
                self._close_pipe()
                return
            for line in self._splitter.feed(chunk):
                self._add_line(line)
            # A pipe's read returns what it holds: a short one emptied it, and one more
            # would only say EAGAIN.
            self._output_drained = len(chunk) < _OUTPUT_CHUNK
            if self._output_drained:
                return

    def _close_pipe(self) -> None:
        if self._pipe >= 0:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._pipe)
            os.close(self._pipe)
            self._pipe = -1

    def _add_line(self, line: str) -> None:
        current = self._current
        if current is None:
            self._pending_lines.append((self._now_ms(), line))
            if len(self._pending_lines) >= 1000:
                self._flush_pending()
            return
        current.log_bytes += len(line)
        if current.log_bytes <= INVOCATION_LOG_MAX:
            current.lines.append((self._now_ms(), line))  # stamped as it is read
        elif current.log_bytes - len(line) <= INVOCATION_LOG_MAX:
            current.lines.append(
                (self._now_ms(), "[lamina] log output of this invocation truncated at 8 MB")
            )

    def _emit_platform(self, line: str) -> None:
        self._pending_lines.append((self._now_ms(), line))

    def _flush_pending(self) -> None:
        if self._unsettled is not None:  # its lines go first: they came first
            self._settle(self._unsettled)
        if self._pending_lines:
            lines, self._pending_lines = self._pending_lines, []
            self._logs.append(self._group, self._stream, lines)

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)


def _error_body(error_type: str | None, body: bytes) -> bytes:
    """The runtime's error document, or Lambda's wrapper when the body is not JSON."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return body
    return orjson.dumps(
        {
            "errorType": error_type or "Runtime.Unknown",
            "errorMessage": body.decode("utf-8", "replace"),
        }
    )
