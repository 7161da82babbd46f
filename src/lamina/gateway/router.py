"""Choosing where a request goes and trying again when it fails there.

The plan for a model: its routes in weighted-random order, then each fallback model's
routes the same way. Each deployment is tried `1 + retries` times with exponential
backoff and full jitter (honouring the provider's retry-after) on 429/5xx/timeouts;
a deployment whose circuit is open is skipped. Other 4xx fail at once: they would
fail the same way everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from lamina.gateway.config import ModelConfig, ProviderConfig
from lamina.gateway.errors import UpstreamError, UpstreamTimeout
from lamina.gateway.health import Health
from lamina.gateway.providers.base import Deployment

T = TypeVar("T")
MAX_BACKOFF_S = 8.0


@dataclass(frozen=True, slots=True)
class Candidate:
    model: ModelConfig  # whose retries and timeout apply
    deployment: Deployment
    fallback: bool


@dataclass(frozen=True, slots=True)
class Routed(Generic[T]):
    value: T
    candidate: Candidate
    attempts: int


class Router:
    def __init__(self, providers: Mapping[str, ProviderConfig], models: Mapping[str, ModelConfig],
                 health: Health, rng: random.Random,
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self._providers = providers
        self._models = models
        self._health = health
        self._rng = rng
        self._sleep = sleep
        # A model with one route (the common case) has one candidate, made once.
        self._single: dict[tuple[str, bool], Candidate] = {}

    def _ordered(self, model: ModelConfig, fallback: bool) -> list[Candidate]:
        if len(model.routes) == 1:
            self._rng.random()  # drawn all the same: the sequence of draws stays as it was
            known = self._single.get((model.name, fallback))
            if known is None or known.model is not model:
                route = model.routes[0]
                known = self._single[(model.name, fallback)] = Candidate(
                    model, Deployment(self._providers[route.provider], route.model), fallback)
            return [known]
        # Efraimidis–Spirakis: sorting by u^(1/w) draws a weighted permutation.
        keyed = sorted(model.routes, key=lambda r: self._rng.random() ** (1 / r.weight),
                       reverse=True)
        return [Candidate(model, Deployment(self._providers[r.provider], r.model), fallback)
                for r in keyed]

    def plan(self, model: ModelConfig) -> list[Candidate]:
        plan = self._ordered(model, fallback=False)
        for name in model.fallbacks:
            plan += self._ordered(self._models[name], fallback=True)
        return plan

    def backoff_s(self, model: ModelConfig, attempt: int, retry_after: float | None) -> float:
        ceiling = min(MAX_BACKOFF_S, model.backoff_s * (2 ** attempt))
        delay = self._rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_BACKOFF_S))
        return delay

    async def run(self, model: ModelConfig,
                  call: Callable[[Candidate], Awaitable[T]]) -> Routed[T]:
        last: UpstreamError | UpstreamTimeout | None = None
        attempts = 0
        for candidate in self.plan(model):
            deployment_id = candidate.deployment.id
            for attempt in range(1 + candidate.model.retries):
                if not self._health.allow(deployment_id):
                    break
                attempts += 1
                try:
                    value = await call(candidate)
                except (UpstreamError, UpstreamTimeout) as exc:
                    if not exc.retryable:
                        self._health.succeeded(deployment_id)  # the request's fault
                        raise
                    self._health.failed(deployment_id)
                    last = exc
                    if attempt < candidate.model.retries:
                        retry_after = exc.retry_after_s if isinstance(exc, UpstreamError) \
                            else None
                        await self._sleep(self.backoff_s(candidate.model, attempt, retry_after))
                    continue
                self._health.succeeded(deployment_id)
                return Routed(value, candidate, attempts)
        if last is None:
            raise UpstreamError(f"every deployment of model {model.name!r} is unhealthy "
                                "(circuit open); try again shortly", status=503)
        raise last
