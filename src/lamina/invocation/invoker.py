"""The Invoker: admit (concurrency), take a warm environment or start one, run, give back.

Both the sync Invoke API and the async event workers come through here. Nothing on
this path touches the database: the function's configuration arrives resolved.
"""

from __future__ import annotations

import base64
import binascii
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from lamina.environments.colocation import ANY_CPU, CoLocation
from lamina.environments.environment import InvocationResult
from lamina.environments.launcher import function_arn
from lamina.environments.pool import EnvironmentPool
from lamina.environments.runtime_api import Invocation
from lamina.errors import InvalidRequestContent
from lamina.functions.model import FunctionConfig
from lamina.invocation.concurrency import Concurrency
from lamina.protocols.request_ids import request_id as new_request_id


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    payload: bytes
    invoked_qualifier: str | None = None  # as the caller named it: alias, version or None
    client_context_b64: str | None = None
    request_id: str | None = None


def trace_id(now: float) -> str:
    # X-Ray's format; ids need to be unique, not secret, so `random` (cheap) is enough.
    bits = random.getrandbits(160)
    return f"Root=1-{int(now):08x}-{bits >> 64:024x};Parent={bits & (2**64 - 1):016x};Sampled=0"


def decode_client_context(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequestContent(
            "Client context must be a valid Base64-encoded JSON object."
        ) from exc


class Invoker:
    def __init__(
        self,
        pool: EnvironmentPool,
        concurrency: Concurrency,
        region: str,
        account_id: str,
        clock: Callable[[], float] = time.time,
        colocation: CoLocation | None = None,
    ) -> None:
        self._pool = pool
        self._concurrency = concurrency
        self._region = region
        self._account = account_id
        self._clock = clock
        self._colocation = colocation

    async def invoke(self, config: FunctionConfig, request: InvokeRequest) -> InvocationResult:
        unreserved = self._concurrency.acquire(config.name)
        try:
            return await self._run(config, request)
        finally:
            self._concurrency.release(config.name, unreserved)

    async def _run(self, config: FunctionConfig, request: InvokeRequest) -> InvocationResult:
        now = self._clock()
        invocation = Invocation(
            request_id=request.request_id or new_request_id(),
            payload=request.payload,
            deadline_ms=int((now + config.timeout_s) * 1000),
            invoked_function_arn=function_arn(
                self._region, self._account, config.name, request.invoked_qualifier
            ),
            trace_id=trace_id(now),
            client_context=decode_client_context(request.client_context_b64),
            cpu=ANY_CPU
            if self._colocation is None
            # The node's count: two serving processes each running one invocation must
            # not both pin their loops (to what may be the same CPU).
            else self._colocation.cpu_for(self._concurrency.node_in_flight),
        )
        env = self._pool.take_idle(config)
        if env is None:
            env = await self._pool.launch(config)
        # The environment returns itself to the pool when the invocation ends.
        return await env.invoke(invocation, float(config.timeout_s))
