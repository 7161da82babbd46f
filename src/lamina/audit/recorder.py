"""The router's audit hook: turns each answered AWS call into an `AuditEvent`.

It runs on the request's task after the handler returns or raises, so it does only
in-memory work: resolve the caller (an in-memory lookup) and buffer the event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from lamina.audit.model import AuditEvent, is_recorded, resource_of
from lamina.audit.store import AuditLog
from lamina.errors import LaminaError
from lamina.protocols.context import RequestContext

logger = logging.getLogger(__name__)


class AuditRecorder:
    def __init__(
        self,
        log: AuditLog,
        principal_arn: Callable[[RequestContext], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._log = log
        self._principal_arn = principal_arn
        self._clock = clock

    def __call__(
        self, ctx: RequestContext, params: Mapping[str, Any], error: LaminaError | None
    ) -> None:
        denied = error is not None and error.status == 403
        if not is_recorded(ctx.service, ctx.operation, denied):
            return
        try:
            principal = self._principal_arn(ctx)
        except Exception:
            # The key was deleted or expired between the call and now: keep its id.
            principal = ""
        self._log.record(
            AuditEvent(
                time_ms=int(self._clock() * 1000),
                request_id=ctx.request_id,
                principal_arn=principal,
                access_key_id=ctx.access_key_id,
                source_ip=ctx.source_ip,
                service=ctx.service,
                operation=ctx.operation,
                resource=resource_of(params),
                allowed=not denied,
                error_code=error.code if error is not None else "",
            )
        )
