from __future__ import annotations

import random

import pytest

from lamina.gateway.config import CircuitConfig, ModelConfig, ProviderConfig, RouteConfig
from lamina.gateway.errors import UpstreamError, UpstreamTimeout
from lamina.gateway.health import Health
from lamina.gateway.router import Candidate, Router

PROVIDERS = {"a": ProviderConfig("a", "openai"), "b": ProviderConfig("b", "anthropic")}


def router(models: dict[str, ModelConfig], sleeps: list[float]) -> Router:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    health = Health(CircuitConfig(failures=100), lambda: 0.0)
    return Router(PROVIDERS, models, health, random.Random(1), sleep)


async def test_retries_then_fallback() -> None:
    main = ModelConfig("main", (RouteConfig("a", "m1"),), fallbacks=("backup",), retries=2,
                       backoff_s=1.0)
    backup = ModelConfig("backup", (RouteConfig("b", "m2"),), retries=0)
    sleeps: list[float] = []
    seen: list[str] = []

    async def call(candidate: Candidate) -> str:
        seen.append(candidate.deployment.id)
        if candidate.deployment.model == "m1":
            raise UpstreamError("busy", status=429, retry_after_s=0.5)
        return "ok"

    routed = await router({"main": main, "backup": backup}, sleeps).run(main, call)
    assert routed.value == "ok" and routed.candidate.fallback and routed.attempts == 4
    assert seen == ["a/m1", "a/m1", "a/m1", "b/m2"]
    assert len(sleeps) == 2 and all(s >= 0.5 for s in sleeps)  # retry-after honoured


async def test_request_errors_fail_fast() -> None:
    main = ModelConfig("main", (RouteConfig("a", "m1"), RouteConfig("b", "m2")), retries=3)

    async def call(candidate: Candidate) -> str:
        raise UpstreamError("bad", status=400)

    with pytest.raises(UpstreamError):
        await router({"main": main}, []).run(main, call)


async def test_last_error_is_raised() -> None:
    main = ModelConfig("main", (RouteConfig("a", "m1"),), retries=1, backoff_s=0)

    async def call(candidate: Candidate) -> str:
        raise UpstreamTimeout("slow")

    with pytest.raises(UpstreamTimeout):
        await router({"main": main}, []).run(main, call)


def test_backoff_is_capped_and_jittered() -> None:
    main = ModelConfig("main", (RouteConfig("a", "m1"),), backoff_s=1.0)
    r = router({"main": main}, [])
    delays = [r.backoff_s(main, 10, None) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays) and len(set(delays)) > 1


def test_weighted_plan() -> None:
    main = ModelConfig("main", (RouteConfig("a", "x", 9), RouteConfig("b", "y", 1)))
    r = router({"main": main}, [])
    firsts = [r.plan(main)[0].deployment.provider.name for _ in range(1000)]
    assert 800 < firsts.count("a") < 980


def test_a_single_route_is_one_candidate_and_draws_as_before() -> None:
    single = ModelConfig("single", (RouteConfig("a", "m1"),))
    pair = ModelConfig("pair", (RouteConfig("a", "m1", weight=1), RouteConfig("b", "m2")))
    r = router({"single": single, "pair": pair}, [])
    first = r.plan(single)
    assert r.plan(single)[0] is first[0] and first[0].deployment.id == "a/m1"
    # One draw per route as sorting would make: the weighted draws that follow are the
    # ones a fresh router makes after the same draws.
    reference = random.Random(1)
    reference.random(), reference.random()
    orders = [[c.deployment.id for c in r.plan(pair)] for _ in range(20)]
    replay = router({"pair": pair}, [])
    replay._rng = reference
    assert orders == [[c.deployment.id for c in replay.plan(pair)] for _ in range(20)]
    # A model replaced (a reload) gets a candidate of its own.
    again = ModelConfig("single", (RouteConfig("b", "m2"),))
    assert r.plan(again)[0].deployment.id == "b/m2" and r.plan(again)[0].model is again
