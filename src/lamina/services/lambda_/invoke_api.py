"""Invoke: RequestResponse, Event (durable, then 202) and DryRun, as Lambda answers them;
and the runner that async workers use to invoke a queued event."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import orjson

from lamina.errors import (
    InvalidParameterValue,
    InvalidRequestContent,
    LaminaError,
    RequestTooLarge,
    ResourceConflict,
    ResourceNotFound,
    ServiceError,
    TooManyRequests,
)
from lamina.functions.aliases import route
from lamina.functions.model import State
from lamina.functions.registry import FunctionRegistry
from lamina.functions.validation import parse_function_ref
from lamina.invocation.dispatcher import Dispatcher, Outcome
from lamina.invocation.event_queue import AsyncEvent, EventQueue
from lamina.invocation.invoker import Invoker, InvokeRequest
from lamina.protocols.context import RequestContext

Params = dict[str, Any]
SYNC_PAYLOAD_MAX = 6 * 1024 * 1024
ASYNC_PAYLOAD_MAX = 256 * 1024


def _check_json(payload: bytes) -> bytes:
    if not payload:
        return b"{}"
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestContent(
            f"Could not parse request body into json: Could not parse payload into json: {exc}"
        ) from exc
    return payload


class InvokeApi:
    def __init__(
        self,
        registry: FunctionRegistry,
        invoker: Invoker,
        queue: EventQueue | None = None,
        dispatcher: Callable[[], Dispatcher] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Without a queue and dispatcher (a worker: serving/worker.py) only RequestResponse
        and DryRun are served; a worker never passes an Event on to this."""
        self._registry = registry
        self._invoker = invoker
        self._queue = queue
        self._dispatcher = dispatcher
        self._clock = clock

    async def invoke(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        kind = p.get("InvocationType") or "RequestResponse"
        payload: bytes = p.get("Payload") or b""
        if kind not in ("RequestResponse", "Event", "DryRun"):
            raise InvalidParameterValue(
                f"InvocationType {kind!r} is invalid: use RequestResponse, Event or DryRun."
            )
        limit = ASYNC_PAYLOAD_MAX if kind == "Event" else SYNC_PAYLOAD_MAX
        if len(payload) > limit:
            raise RequestTooLarge(
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
            )
        payload = _check_json(payload)
        config = route(self._registry, ref.name, ref.qualifier)
        if kind == "DryRun":
            return {"StatusCode": 204, "Payload": b""}
        if kind == "Event":
            if self._queue is None or self._dispatcher is None:
                raise ServiceError("This process does not take asynchronous invocations.")
            event_id = ctx.request_id  # the 202's request id names the invocation, as in Lambda
            event = AsyncEvent(event_id, ref.name, ref.qualifier, payload, self._clock())
            await self._queue.enqueue(event)  # durable before the 202
            self._dispatcher().schedule(event)
            return {"StatusCode": 202, "Payload": b""}
        if config.state is State.FAILED:
            raise ResourceConflict(
                "Lambda is unable to invoke the function: it is in the Failed state "
                f"({config.state_reason or 'its code could not be prepared'}). Update its code."
            )
        config = await self._registry.wait_active(config)
        result = await self._invoker.invoke(
            config,
            InvokeRequest(
                payload=payload,
                invoked_qualifier=ref.qualifier,
                client_context_b64=p.get("ClientContext"),
                # Lambda answers Invoke with the invocation's own id (x-amzn-RequestId
                # is the handler's context.aws_request_id).
                request_id=ctx.request_id,
            ),
        )
        out: Params = {
            "StatusCode": 200,
            "Payload": result.payload,
            "ExecutedVersion": config.version,
        }
        if result.function_error:
            out["FunctionError"] = result.function_error
        if p.get("LogType") == "Tail":
            out["LogResult"] = base64.b64encode(result.log_tail.encode()).decode()
        return out

    async def run_event(self, event: AsyncEvent) -> Outcome:
        """Invoke one queued event; the dispatcher decides about retries."""
        try:
            config = route(self._registry, event.function, event.qualifier)
            config = await self._registry.wait_active(config)
            result = await self._invoker.invoke(
                config,
                InvokeRequest(
                    payload=event.payload, invoked_qualifier=event.qualifier, request_id=event.id
                ),
            )
        except ResourceNotFound:
            return Outcome.GONE
        except TooManyRequests:
            return Outcome.THROTTLED
        except LaminaError:
            return Outcome.THROTTLED  # e.g. still activating: try again later
        return Outcome.FUNCTION_ERROR if result.function_error else Outcome.SUCCESS
