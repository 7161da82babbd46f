"""The gateway's observability outlets, fed by the accounting writer (usage.py):

    call records ──batches──▶ Telemetry.observe ──▶ CallMetrics (Prometheus, always)
                                                └─▶ SpanExport (OpenTelemetry, when
                                                    an OTLP endpoint is configured)

Nothing here runs on the request path except `InFlight` (two dict updates a call).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from lamina.gateway.config import TelemetryConfig
from lamina.gateway.metrics import CallMetrics, LiveState
from lamina.gateway.tracing import SpanExport, otlp_export
from lamina.gateway.usage import UsageRecord

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
SHUTDOWN_S = 5.0


class InFlight:
    """Calls admitted and not yet finished, per model (read when scraped)."""

    __slots__ = ("by_model",)

    def __init__(self) -> None:
        self.by_model: dict[str, int] = {}

    def enter(self, model: str) -> None:
        self.by_model[model] = self.by_model.get(model, 0) + 1

    def leave(self, model: str) -> None:
        self.by_model[model] -= 1


class Deployed(Protocol):
    def deployments(self) -> list[dict[str, Any]]: ...


class Telemetry:
    def __init__(self, spans: SpanExport | None = None) -> None:
        # Per gateway, never prometheus_client's process-wide default registry.
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = CallMetrics(self.registry)
        self.in_flight = InFlight()
        self._spans = spans

    @classmethod
    def start(cls, config: TelemetryConfig, env: Mapping[str, str]) -> Telemetry:
        return cls(otlp_export(config, env))

    @classmethod
    def disabled(cls) -> Telemetry:
        """Metrics only (they cost nothing until scraped); no spans."""
        return cls()

    @property
    def tracing(self) -> bool:
        return self._spans is not None

    def watch(self, gateway: Deployed) -> None:
        """Report the gateway's circuits and calls in flight when scraped."""
        self.registry.register(LiveState(self.in_flight.by_model, gateway.deployments))

    def observe(self, records: Sequence[UsageRecord]) -> None:
        self.calls.observe(records)
        if self._spans is not None:
            self._spans.observe(records)

    def exposition(self) -> bytes:
        """The Prometheus text exposition format (METRICS_CONTENT_TYPE)."""
        return generate_latest(self.registry)

    async def close(self) -> None:
        spans, self._spans = self._spans, None
        if spans is not None:
            # The SDK's shutdown blocks while it exports the last spans; a collector
            # that is down must not hold lamina's shutdown (its thread is a daemon).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(spans.shutdown), SHUTDOWN_S)
