"""Error shapes, exactly as Lambda's Python runtime (awslambdaric) reports them.

An error travels three ways: as the JSON body posted to the Runtime API
(`{"errorMessage", "errorType", "requestId", "stackTrace"}`), as an X-Ray cause
header, and as a log record (`[ERROR] Type: message` then the traceback). The
`traceback` module is imported only here, on the error path.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

    Frame = tuple[str, int | None, str, str | None]

# The runtime's own folder: frames from these files lead every traceback and are
# cut from what the function's author sees (awslambdaric cuts its bootstrap.py).
RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class FaultException(Exception):
    """A failure of the runtime's contract with the function, typed `Runtime.*`."""

    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type: str, msg: str, trace: list[str] | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


def make_error(
    message: str | None,
    error_type: str | None,
    stack_trace: list[str] | None,
    request_id: str | None = None,
) -> dict[str, object]:
    return {
        "errorMessage": message if message else "",
        "errorType": error_type if error_type else "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def user_frames(tb: TracebackType | None) -> list[Frame]:
    """The traceback as (file, line, function, source) tuples, the runtime's own
    leading frames removed. Plain tuples, as awslambdaric uses, so that Python
    3.11+ prints no `^^^^` column markers in the formatted stack."""
    import traceback

    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    for i, frame in enumerate(frames):
        if not frame[0].startswith(RUNTIME_DIR):
            return frames[i:]
    return frames


def format_frames(frames: list[Frame]) -> list[str]:
    import traceback

    return traceback.format_list(frames)  # type: ignore[arg-type]


def exception_error(exc: BaseException, request_id: str | None = None) -> dict[str, object]:
    frames = user_frames(exc.__traceback__)
    return make_error(str(exc), type(exc).__name__, format_frames(frames), request_id)


def xray_fault(
    error_type: str, message: str, frames: list[Frame] | None = None
) -> dict[str, object]:
    stack = []
    paths = []
    for filename, line, name, _ in frames or ():
        stack.append({"label": name, "path": filename, "line": line})
        if filename not in paths:
            paths.append(filename)
    return {
        "working_directory": os.getcwd(),
        "exceptions": [{"message": message, "type": error_type, "stack": stack}],
        "paths": paths,
    }


def error_log_lines(error: dict[str, object]) -> list[str]:
    """The text-format log record for an error, one list item per line; leading
    spaces become NO-BREAK SPACEs as awslambdaric writes them (log viewers keep
    them)."""
    description = "[ERROR]"
    error_type = error.get("errorType")
    if error_type:
        description += f" {error_type}"
    message = error.get("errorMessage")
    if message:
        if error_type:
            description += ":"
        description += f" {message}"
    lines = [description]
    stack_trace = error.get("stackTrace")
    if stack_trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack_trace:  # type: ignore[attr-defined]
            if element == "":
                lines.append("")
                continue
            for line in element.splitlines():
                stripped = line.lstrip(" ")
                lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    return lines
