"""Where a function's output goes, and when `logging` gets Lambda's root handler.

Like awslambdaric: stdout and stderr flush on every write; log records and
runtime error records go to stdout, an error's lines joined by "\\r" so that a
line-splitting log collector keeps it as one event; or, when the host passes
`_LAMBDA_TELEMETRY_LOG_FD`, each record is one length-prefixed frame on that fd.

`logging` (and what it imports) is a noticeable part of a cold start, and many
functions never use it, so the root handler is installed the moment the function
first imports `logging`, by a one-shot import hook, rather than by importing it
up front. Either way the handler is there before any of the function's code can
log.
"""

from __future__ import annotations

import io
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping
    from types import ModuleType
    from typing import TextIO

ERROR_LOG_LINE_TERMINATE = "\r"
TEXT_FRAME_TYPE = 0xA55A0003.to_bytes(4, "big")
TEXT_ERROR_FRAME_TYPE = 0xA55A0017.to_bytes(4, "big")
JSON_ERROR_FRAME_TYPE = 0xA55A0016.to_bytes(4, "big")

UNHANDLED_EXCEPTION_WARNING = (
    "LAMBDA_WARNING: "
    "Unhandled exception. "
    "The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function "
    "change, or can be applied automatically. "
    "To determine if the runtime has been updated, check the runtime version in the "
    "INIT_START log entry. "
    "If this error correlates with a change in the runtime version, you may be able to "
    "mitigate this error by temporarily rolling back to the previous runtime version. "
    "For more information, see https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)


class CurrentInvocation:
    """The invocation in progress, as log records and the logging filter see it."""

    __slots__ = ("request_id", "tenant_id")

    def __init__(self) -> None:
        self.request_id: str | None = None
        self.tenant_id: str | None = None


class Unbuffered:
    """stdout/stderr as the function sees them: every write reaches the fd at once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        # Nothing written through `stream` (or its `.buffer`) ever waits in a buffer: a
        # write-through text layer over a raw file, as `python -u` sets it up (every
        # environment runs so). Then there is nothing to flush per invocation.
        self.holds_nothing = bool(getattr(stream, "write_through", False)) and isinstance(
            getattr(stream, "buffer", None), io.FileIO
        )

    def __enter__(self) -> Unbuffered:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def __getattr__(self, attr: str) -> object:
        return getattr(self.stream, attr)

    def write(self, msg: str) -> int:
        written = self.stream.write(msg)
        self.stream.flush()
        return written

    def writelines(self, msgs: list[str]) -> None:
        self.stream.writelines(msgs)
        self.stream.flush()

    def flush(self) -> None:  # defined, not delegated: called twice per invocation
        self.stream.flush()


class StandardLogSink:
    def log(self, msg: str, frame_type: bytes | None = None) -> None:
        sys.stdout.write(msg)

    def log_error(self, message_lines: list[str], json_format: bool = False) -> None:
        sys.stdout.write(ERROR_LOG_LINE_TERMINATE.join(message_lines) + "\n")


class FramedTelemetryLogSink:
    """Frames: type (4 bytes), length (4), timestamp in microseconds (8), message;
    big-endian, as Lambda's telemetry log fd expects."""

    def __init__(self, fd: int) -> None:
        self.file = os.fdopen(fd, "wb", 0)

    def log(self, msg: str, frame_type: bytes | None = None) -> None:
        encoded = msg.encode("utf-8")
        timestamp = time.time_ns() // 1000
        self.file.write(
            (frame_type or TEXT_FRAME_TYPE)
            + len(encoded).to_bytes(4, "big")
            + timestamp.to_bytes(8, "big")
            + encoded
        )

    def log_error(self, message_lines: list[str], json_format: bool = False) -> None:
        frame_type = JSON_ERROR_FRAME_TYPE if json_format else TEXT_ERROR_FRAME_TYPE
        self.log("\n".join(message_lines), frame_type=frame_type)


if TYPE_CHECKING:
    LogSink = StandardLogSink | FramedTelemetryLogSink


def create_log_sink(environ: MutableMapping[str, str]) -> LogSink:
    fd = environ.pop("_LAMBDA_TELEMETRY_LOG_FD", None)
    if fd is not None:
        return FramedTelemetryLogSink(int(fd))
    return StandardLogSink()


def unbuffer_stdio() -> None:
    if not isinstance(sys.stdout, Unbuffered):
        sys.stdout = Unbuffered(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, Unbuffered):
        sys.stderr = Unbuffered(sys.stderr)  # type: ignore[assignment]


class LoggingImportHook:
    """Runs `on_import(logging)` right after `logging` is first imported, then
    leaves `sys.meta_path`. The module keeps its real loader and spec."""

    def __init__(self, on_import: Callable[[ModuleType], None]) -> None:
        self._on_import = on_import

    def install(self) -> None:
        if "logging" in sys.modules:
            self._on_import(sys.modules["logging"])
        else:
            sys.meta_path.insert(0, self)  # type: ignore[arg-type]

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != "logging":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # type: ignore[arg-type]
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is not None and hasattr(loader, "exec_module"):
            spec.loader = _LoaderThenHook(loader, self._on_import)
        return spec

    def invalidate_caches(self) -> None:
        pass


class _LoaderThenHook:
    def __init__(self, loader: object, on_import: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._on_import = on_import

    def __getattr__(self, attr: str) -> object:
        return getattr(self._loader, attr)

    def create_module(self, spec: object) -> object:
        return self._loader.create_module(spec)  # type: ignore[attr-defined]

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # type: ignore[assignment]
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader  # type: ignore[assignment]
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        self._on_import(module)
