"""Lambda's root log handler: text (`[LEVEL]\\ttime\\trequest-id\\tmessage`) or JSON.

Imported only once the function has imported `logging` (see log_sinks). Mirrors
awslambdaric's `_setup_logging`: UTC timestamps for every formatter, the level
from AWS_LAMBDA_LOG_LEVEL, the request id from the invocation in progress.
"""

from __future__ import annotations

import json
import logging
import time
import traceback

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .log_sinks import CurrentInvocation, LogSink

TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
TEXT_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
JSON_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_JSON_FRAME_TYPES = {
    level: frame.to_bytes(4, "big")
    for level, frame in (
        (0, 0xA55A0002), (10, 0xA55A000A), (20, 0xA55A000E),
        (30, 0xA55A0012), (40, 0xA55A0016), (50, 0xA55A001A),
    )
}  # fmt: skip
_TEXT_FRAME_TYPES = {
    level: frame.to_bytes(4, "big")
    for level, frame in (
        (0, 0xA55A0003), (10, 0xA55A000B), (20, 0xA55A000F),
        (30, 0xA55A0013), (40, 0xA55A0017), (50, 0xA55A001B),
    )
}  # fmt: skip
_RESERVED_FIELDS = frozenset(
    (
        "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
        "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
        "relativeCreated", "thread", "threadName", "processName", "process",
        "aws_request_id", "tenant_id", "_frame_type",
    )
)  # fmt: skip
# default=str: a value json cannot encode is written as text rather than losing the record.
_encode_json = json.JSONEncoder(ensure_ascii=False, default=str).encode


def level_from_env(value: str | None) -> str:
    return {None: "", "TRACE": "DEBUG"}.get(value, value).upper()  # type: ignore[union-attr]


def install(sink: LogSink, current: CurrentInvocation, json_format: bool, log_level: str) -> None:
    logging.Formatter.converter = time.gmtime
    logger = logging.getLogger()
    handler: logging.Handler
    if json_format or log_level:
        handler = LambdaLoggerHandlerWithFrameType(sink)
    else:
        handler = LambdaLoggerHandler(sink)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, TEXT_DATE_FORMAT))
    if log_level in logging._nameToLevel:
        logger.setLevel(log_level)
    handler.addFilter(LambdaLoggerFilter(current))
    logger.addHandler(handler)


def _level_bucket(record: logging.LogRecord) -> int:
    return min(50, max(0, record.levelno)) // 10 * 10


class LambdaLoggerHandler(logging.Handler):
    def __init__(self, log_sink: LogSink) -> None:
        super().__init__()
        self.log_sink = log_sink

    def emit(self, record: logging.LogRecord) -> None:
        self.log_sink.log(self.format(record))


class LambdaLoggerHandlerWithFrameType(logging.Handler):
    def __init__(self, log_sink: LogSink) -> None:
        super().__init__()
        self.log_sink = log_sink

    def emit(self, record: logging.LogRecord) -> None:
        self.log_sink.log(
            self.format(record),
            frame_type=(
                getattr(record, "_frame_type", None) or _TEXT_FRAME_TYPES.get(_level_bucket(record))
            ),
        )


class LambdaLoggerFilter(logging.Filter):
    def __init__(self, current: CurrentInvocation) -> None:
        super().__init__()
        self._current = current

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self._current.request_id or ""
        record.tenant_id = self._current.tenant_id
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(datefmt=JSON_DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.levelno = _level_bucket(record)
        record.levelname = logging.getLevelName(record.levelno)
        record._frame_type = _JSON_FRAME_TYPES.get(record.levelno, _JSON_FRAME_TYPES[0])
        exc_info = record.exc_info
        result: dict[str, object] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": (
                record.msg
                if isinstance(record.msg, dict) and not record.args
                else record.getMessage()
            ),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc_info[2]) if exc_info else None,
            "errorType": exc_info[0].__name__ if exc_info and exc_info[0] else None,
            "errorMessage": str(exc_info[1]) if exc_info else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": (
                f"{record.pathname}:{record.funcName}:{record.lineno}" if exc_info else None
            ),
        }
        if getattr(record, "tenant_id", None) is not None:
            result["tenantId"] = record.tenant_id
        result.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _RESERVED_FIELDS and key not in result
        )
        return _encode_json({k: v for k, v in result.items() if v is not None}) + "\n"
