"""The runtime's life: set up, import the handler (init), then serve invocations.

Init mirrors awslambdaric's `_get_handler` message for message, because those
messages are what a function's author searches for: `Runtime.MalformedHandlerName`,
`Runtime.BuiltInModuleConflict`, `Runtime.ImportModuleError`,
`Runtime.UserCodeSyntaxError`, `Runtime.HandlerNotFound`, or the class name of
whatever the module raised. An init error is logged, posted to
`/runtime/init/error`, and the process exits 1.
"""

from __future__ import annotations

import sys
import time

from .faults import FaultException, error_log_lines, exception_error, make_error
from .invocations import flush_stdio, serve
from .log_sinks import (
    UNHANDLED_EXCEPTION_WARNING,
    CurrentInvocation,
    LoggingImportHook,
    create_log_sink,
    unbuffer_stdio,
)
from .payload import Marshaller
from .runtime_api import HostGone, RuntimeApiClient, RuntimeApiError
from .runtime_channel import ChannelClient

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping, Sequence
    from types import ModuleType

    from .log_sinks import LogSink

    Handler = Callable[[object, object], object]


def main(argv: Sequence[str], environ: MutableMapping[str, str]) -> int:
    """Runs until the host goes away (0) or init fails (1); never returns otherwise."""
    address = environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write("[ERROR] AWS_LAMBDA_RUNTIME_API is not set\n")
        return 1
    handler_name = argv[1] if len(argv) > 1 else environ.get("_HANDLER", "")
    set_import_path(environ)
    unbuffer_stdio()

    sink = create_log_sink(environ)
    json_format = (environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"
    current = CurrentInvocation()
    marshaller = Marshaller(environ.get("AWS_EXECUTION_ENV"))
    log_error = ErrorLog(sink, marshaller, json_format)
    logging_setup = LoggingSetup(sink, current, json_format, environ.get("AWS_LAMBDA_LOG_LEVEL"))
    LoggingImportHook(logging_setup).install()
    # lamina's private channel when it handed one over, else the standard Runtime API;
    # popped so the function never sees it.
    channel = environ.pop("_LAMINA_RUNTIME_CHANNEL", None)
    api: RuntimeApiClient | ChannelClient = (
        ChannelClient(int(channel)) if channel else RuntimeApiClient(address)
    )

    try:
        handler = load_handler(handler_name)
    except FaultException as exc:
        return report_init_error(api, log_error, make_error(exc.msg, exc.exception_type, exc.trace))
    except Exception as exc:
        return report_init_error(api, log_error, exception_error(exc))
    if "logging" in sys.modules:  # imported by a loader the hook could not wrap
        logging_setup(sys.modules["logging"])

    try:
        serve(api, handler, marshaller, current, log_error, environ)
    except HostGone:
        return 0
    except RuntimeApiError as exc:
        sys.stderr.write(f"[ERROR] {exc}\n")
        return 1
    finally:
        api.close()
    return 0  # serve() only returns by raising


def set_import_path(environ: MutableMapping[str, str]) -> None:
    """The task root first, then the layers' folders in order, as on Lambda."""
    first = [environ.get("LAMBDA_TASK_ROOT") or ""]
    first += (environ.get("LAMINA_LAYER_PATHS") or "").split(":")
    first = [path for i, path in enumerate(first) if path and path not in first[:i]]
    sys.path[:] = first + [path for path in sys.path if path not in first]


def load_handler(name: str) -> Handler:
    try:
        module_name, function_name = name.rsplit(".", 1)
    except ValueError as exc:
        raise FaultException(
            FaultException.MALFORMED_HANDLER_NAME, f"Bad handler '{name}': {exc}"
        ) from None
    try:
        if module_name.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                f"Cannot use built-in module {module_name} as a handler module",
            )
        import importlib

        module: ModuleType = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR, f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR,
            f"Syntax error in module '{module_name}': {exc}",
            trace,
        ) from None
    try:
        return getattr(module, function_name)  # type: ignore[no-any-return]
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND,
            f"Handler '{function_name}' missing on module '{module_name}'",
        ) from None


def report_init_error(
    api: RuntimeApiClient | ChannelClient, log_error: ErrorLog, error: dict[str, object]
) -> int:
    import logging  # installs Lambda's handler through the import hook if not yet there

    logging.warning(UNHANDLED_EXCEPTION_WARNING)
    log_error(error)
    flush_stdio()
    try:
        api.post_init_error(log_error.marshaller.to_json(error).encode(), str(error["errorType"]))
    except HostGone:
        pass
    finally:
        api.close()
    return 1


class LoggingSetup:
    """Installs Lambda's root handler once `logging` exists (see log_sinks)."""

    def __init__(
        self, sink: LogSink, current: CurrentInvocation, json_format: bool, level: str | None
    ) -> None:
        self._args = (sink, current, json_format, level)
        self._done = False

    def __call__(self, logging: ModuleType) -> None:
        if self._done:
            return
        self._done = True
        from .log_handlers import install, level_from_env

        sink, current, json_format, level = self._args
        install(sink, current, json_format, level_from_env(level))


class ErrorLog:
    """Writes an error record as awslambdaric does, in the function's log format."""

    def __init__(self, sink: LogSink, marshaller: Marshaller, json_format: bool) -> None:
        self.sink = sink
        self.marshaller = marshaller
        self.json_format = json_format

    def __call__(self, error: dict[str, object]) -> None:
        if self.json_format:
            record = {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "level": "ERROR",
                **error,
            }
            self.sink.log_error([self.marshaller.to_json(record)], json_format=True)
        else:
            self.sink.log_error(error_log_lines(error))
