"""What an environment writes to its log stream: the function's output framed by
Lambda's platform lines (INIT_START, START, END, REPORT), as Lambda formats them."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

LINE_MAX = 256 * 1024  # CloudWatch Logs' event size limit
INVOCATION_LOG_MAX = 8 * 1024 * 1024  # per invocation; beyond it output is dropped, not buffered
TAIL_BYTES = 4096


class LogSink(Protocol):
    """Where log events go (telemetry.LogStore): non-blocking, batched by the sink."""

    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None: ...


def log_group(function: str) -> str:
    return f"/aws/lambda/{function}"


def log_stream(version: str, env_id: str, now: float | None = None) -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime(time.time() if now is None else now))
    return f"{day}/[{version}]{env_id}"


@dataclass(frozen=True, slots=True)
class Report:
    request_id: str
    duration_ms: float
    memory_mb: int
    max_memory_mb: int
    init_duration_ms: float | None = None
    restored: bool = False  # forked from a SnapStart snapshot: init was a restore
    status: str | None = None  # "timeout", "error" for a crashed runtime

    def line(self) -> str:
        parts = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {max(1, math.ceil(self.duration_ms))} ms",
            f"Memory Size: {self.memory_mb} MB",
            f"Max Memory Used: {self.max_memory_mb} MB",
        ]
        if self.init_duration_ms is not None and self.restored:
            parts.append(f"Restore Duration: {self.init_duration_ms:.2f} ms")
            parts.append(f"Billed Restore Duration: {max(1, math.ceil(self.init_duration_ms))} ms")
        elif self.init_duration_ms is not None:
            parts.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.status is not None:
            parts.append(f"Status: {self.status}")
        return "\t".join(parts) + "\t"


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def tail(lines: Sequence[str]) -> str:
    """The last 4 KB of an invocation's log, as `X-Amz-Log-Result` carries it."""
    text = "".join(line + "\n" for line in lines).encode()
    return text[-TAIL_BYTES:].decode("utf-8", "ignore")


class LineSplitter:
    """Turns pipe chunks into lines; a partial line waits for its newline."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        lines: list[bytes] = []
        for line in complete:  # a line over the event limit becomes several events
            lines.extend(line[i : i + LINE_MAX] for i in range(0, max(len(line), 1), LINE_MAX))
        while len(self._partial) > LINE_MAX:  # a line with no end yet: cut events off it
            lines.append(self._partial[:LINE_MAX])
            self._partial = self._partial[LINE_MAX:]
        return [c.decode("utf-8", "replace").rstrip("\r") for c in lines]

    def flush(self) -> list[str]:
        rest, self._partial = self._partial, b""
        return [rest.decode("utf-8", "replace")] if rest else []
