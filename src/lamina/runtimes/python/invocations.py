"""The invocation loop: next event, handler, response or error; repeat.

This is the warm-invoke hot path. Per invocation it does two HTTP exchanges on
one kept-alive connection, one JSON decode, one JSON encode, and builds one
context object; nothing is imported here after the first invocation. stdout and
stderr are flushed before the result is posted, because the host attributes
output written between `next` and the result to that invocation.
"""

from __future__ import annotations

import json
import sys

from .faults import FaultException, format_frames, make_error, user_frames, xray_fault
from .lambda_context import FunctionFacts, LambdaContext
from .log_sinks import Unbuffered
from .trace_env import TraceVariable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

    from .log_sinks import CurrentInvocation
    from .payload import Marshaller
    from .runtime_api import RuntimeApiClient
    from .runtime_channel import ChannelClient

# X-Ray causes at least this large are dropped rather than sent as a header.
_MAX_XRAY_HEADER = 1024 * 1024


def serve(
    api: RuntimeApiClient | ChannelClient,
    handler: Callable[[object, object], object],
    marshaller: Marshaller,
    current: CurrentInvocation,
    log_error: Callable[[dict[str, object]], None],
    environ: MutableMapping[str, str],
) -> None:
    """Serves invocations until the Runtime API goes away (HostGone is raised)."""
    facts = FunctionFacts(environ)
    trace = TraceVariable(environ)
    try:
        while True:
            invocation = api.next_invocation()
            headers = invocation.headers
            request_id = headers.get("lambda-runtime-aws-request-id", "")
            tenant_id = headers.get("lambda-runtime-aws-tenant-id")
            current.request_id = request_id
            current.tenant_id = tenant_id
            trace.set(headers.get("lambda-runtime-trace-id"))

            try:
                context = make_context(headers, request_id, tenant_id, facts)
                event = marshaller.unmarshal(invocation.body, headers.get("content-type"))
                body, content_type = marshaller.marshal(handler(event, context))
            except FaultException as exc:
                error = make_error(exc.msg, exc.exception_type, exc.trace, request_id)
                xray = xray_fault("LambdaValidationError", exc.msg)
            except Exception as exc:
                frames = user_frames(exc.__traceback__)
                message = str(exc)
                error_type = type(exc).__name__
                error = make_error(message, error_type, format_frames(frames), request_id)
                xray = xray_fault(error_type, message, frames)
            else:
                flush_stdio()
                api.post_response(request_id, body, content_type)
                continue

            log_error(error)
            flush_stdio()
            xray_cause = marshaller.to_json(xray)
            api.post_error(
                request_id,
                marshaller.to_json(error).encode(),
                str(error["errorType"]),
                xray_cause if len(xray_cause.encode()) < _MAX_XRAY_HEADER else None,
            )
    finally:
        trace.release()


def make_context(
    headers: dict[str, str], request_id: str, tenant_id: str | None, facts: FunctionFacts
) -> LambdaContext:
    client_context = headers.get("lambda-runtime-client-context")
    cognito_identity = headers.get("lambda-runtime-cognito-identity")
    return LambdaContext(
        request_id,
        _json_header(client_context, "Client Context") if client_context else None,
        _json_header(cognito_identity, "Cognito Identity") if cognito_identity else None,
        int(headers.get("lambda-runtime-deadline-ms") or 0),
        headers.get("lambda-runtime-invoked-function-arn"),
        tenant_id,
        facts,
    )


def _json_header(value: str, name: str) -> dict[str, object]:
    try:
        return json.loads(value)  # type: ignore[no-any-return]
    except Exception as exc:
        raise FaultException(
            FaultException.LAMBDA_CONTEXT_UNMARSHAL_ERROR, f"Unable to parse {name} JSON: {exc}"
        ) from None


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream.__class__ is Unbuffered and stream.holds_nothing:  # type: ignore[attr-defined]
            continue  # every write through it reached the fd already
        try:  # noqa: SIM105 - contextlib would be one more import at every cold start
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass  # the function closed or replaced it; nothing of ours is buffered there
