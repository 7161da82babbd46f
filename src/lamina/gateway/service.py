"""The gateway's request pipeline, one ordered list of small steps per API:

    model known? → key may use it? → budget left? → cache hit? → within limits?
    → router (weights, retries, fallbacks, circuits) → provider transform → upstream
    → usage, cost, debit recorded (queued, written off the request path)

Inbound formats other than OpenAI's are translated before they get here; everything
in this module speaks OpenAI chat completion shapes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from lamina.gateway.cache import ResponseCache, cache_key
from lamina.gateway.config import GatewayConfig, ModelConfig, PromptConfig
from lamina.gateway.errors import InvalidGatewayRequest, ModelNotFound
from lamina.gateway.folding import unfold
from lamina.gateway.health import Health
from lamina.gateway.keys import Keyring, VirtualKey
from lamina.gateway.limits import Limiter, Limits, Ticket, estimate_tokens
from lamina.gateway.pricing import PriceBook, Usage, cost_usd
from lamina.gateway.prompts import PromptStore, merged
from lamina.gateway.providers import JSON, Provider, provider_for
from lamina.gateway.providers.anthropic import UNTRANSLATED
from lamina.gateway.providers.base import usage_of
from lamina.gateway.providers.openai_responses import NEEDS_RESPONSES
from lamina.gateway.router import Candidate, Router
from lamina.gateway.spend import Hold, SpendLedger
from lamina.gateway.streaming import CLIENT_CLOSED, OpenStream, Relay
from lamina.gateway.upstream import Upstream
from lamina.gateway.usage import Debit, UsageRecord, UsageWriter


@dataclass(frozen=True, slots=True)
class Clocks:
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    body: JSON
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamReply:
    chunks: AsyncIterator[JSON]
    headers: Mapping[str, str]
    # Ends the upstream call and accounts it even if `chunks` was never iterated.
    close: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Admission:
    """What a call holds while in flight: its rate-limit ticket and budget hold."""

    ticket: Ticket
    hold: Hold

    def settle(self, tokens: int) -> None:
        self.ticket.settle(tokens)

    def release(self) -> None:
        self.ticket.release()
        self.hold.release()


@dataclass(frozen=True, slots=True)
class Call:
    """What the accounting step needs to know about one call."""

    key: VirtualKey
    model: str
    api: str
    stream: bool
    started: float


class GatewayService:
    def __init__(self, config: GatewayConfig, *, keyring: Keyring, ledger: SpendLedger,
                 upstream: Upstream, writer: UsageWriter, clocks: Clocks,
                 rng: random.Random, sleep: Callable[[float], Awaitable[None]],
                 prompt_store: PromptStore | None = None) -> None:
        self.keyring = keyring
        self.prompt_store = prompt_store
        self.ledger = ledger
        self._upstream = upstream
        self._writer = writer
        self._clocks = clocks
        self._rng = rng
        self._sleep = sleep
        self._limiter = Limiter(clocks.monotonic)
        self._cache = ResponseCache(clocks.monotonic)
        self._health = Health(config.circuit, clocks.monotonic)
        self._providers: dict[str, Provider] = {}
        self.reconfigure(config)

    def reconfigure(self, config: GatewayConfig) -> None:
        """Swap in a new configuration; limits, health, cache and spend carry over."""
        self.config = config
        self._router = Router(config.providers, config.models, self._health, self._rng,
                              self._sleep)
        self._prices = PriceBook.load(config.pricing)
        self._providers = {p.type: provider_for(p.type) for p in config.providers.values()}
        self.keyring.use_config(config.keys)

    # -- the steps ------------------------------------------------------------------

    def deployments(self) -> list[dict[str, Any]]:
        """Every model's deployments and the state of their circuits."""
        out = []
        for model in self.config.models.values():
            for route in model.routes:
                deployment_id = f"{route.provider}/{route.model}"
                out.append({"model": model.name, "provider": route.provider,
                            "upstream_model": route.model, "weight": route.weight,
                            "circuit": self._health.state(deployment_id).value,
                            "consecutive_failures": self._health.failures(deployment_id)})
        return out

    def prompts(self) -> dict[str, tuple[PromptConfig, ...]]:
        """Every template version: the config file's and those published since."""
        published = self.prompt_store.published if self.prompt_store else {}
        return merged(self.config.prompts, published)

    def model_names(self, key: VirtualKey) -> list[str]:
        return [name for name in self.config.models if key.allows(name)]

    def _resolve(self, key: VirtualKey, body: JSON) -> ModelConfig:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise InvalidGatewayRequest("'model' is required (a model name)")
        model = self.config.models.get(name)
        if model is None:
            raise ModelNotFound(f"model {name!r} does not exist; GET /v1/models lists them")
        key.check_model(name)
        self.ledger.check(key)
        return model

    def _admit(self, key: VirtualKey, model: ModelConfig, body: JSON, size: int) -> Admission:
        tokens = estimate_tokens(size)
        hold = self.ledger.reserve(key, self._estimate_usd(key, model, body, tokens))
        try:
            ticket = self._limiter.admit(
                [(f"key:{key.id}", f"key {key.name!r}",
                  Limits(key.rpm, key.tpm, key.max_parallel)),
                 (f"model:{model.name}", f"model {model.name!r}",
                  Limits(model.rpm, model.tpm, model.max_parallel))], tokens)
        except BaseException:
            hold.release()
            raise
        return Admission(ticket, hold)

    def _estimate_usd(self, key: VirtualKey, model: ModelConfig, body: JSON,
                      tokens: int) -> float:
        if key.budget_usd is None:
            return 0.0
        route = model.routes[0]
        provider = self.config.providers[route.provider]
        price = self._prices.price(provider.type, route.model)
        if price is None:
            return 0.0
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        completion = limit if isinstance(limit, int) else 0
        return cost_usd(price, Usage(prompt_tokens=tokens, completion_tokens=completion))

    def _cost(self, candidate: Candidate | None, usage: Usage) -> float:
        if candidate is None:
            return 0.0
        deployment = candidate.deployment
        price = self._prices.price(deployment.provider.type, deployment.model)
        return cost_usd(price, usage) if price is not None else 0.0

    def account(self, call: Call, candidate: Candidate | None, status: int,
                usage: Usage | None, *, ttft: float | None = None,
                cache_hit: bool = False) -> None:
        usage = usage or Usage()
        cost = 0.0 if cache_hit else self._cost(candidate, usage)
        now = self._clocks.monotonic()
        self._writer.record(UsageRecord(
            ts=self._clocks.wall(), key_id=call.key.id, key_name=call.key.name,
            model=call.model,
            provider=candidate.deployment.provider.name if candidate else "",
            upstream_model=candidate.deployment.model if candidate else "",
            api=call.api, status=status, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens,
            cost_usd=cost, latency_ms=(now - call.started) * 1000,
            ttft_ms=(ttft - call.started) * 1000 if ttft is not None else None,
            cache_hit=cache_hit, fallback=bool(candidate and candidate.fallback),
            stream=call.stream))
        row = self.ledger.debit(call.key, cost)
        if row is not None:
            self._writer.record(Debit(row[0], row[1], cost))

    @staticmethod
    def _headers(candidate: Candidate, attempts: int) -> dict[str, str]:
        return {"x-lamina-provider": candidate.deployment.provider.name,
                "x-lamina-upstream-model": candidate.deployment.model,
                "x-lamina-attempts": str(attempts),
                "x-lamina-fallback": "true" if candidate.fallback else "false",
                "x-lamina-cache": "miss"}

    # -- chat completions -------------------------------------------------------------

    async def chat(self, key: VirtualKey, body: JSON, *, api: str = "chat",
                   size: int = 0) -> Reply:
        model = self._resolve(key, body)
        _check_messages(body)
        call = Call(key, model.name, api, False, self._clocks.monotonic())
        cached_key = cache_key("chat", body) if model.cache_ttl_s else None
        if cached_key is not None and (hit := self._cache.get(cached_key)) is not None:
            self.account(call, None, 200, usage_of(hit.get("usage")), cache_hit=True)
            return Reply(hit, {"x-lamina-cache": "hit"})
        ticket = self._admit(key, model, body, size)
        usage: Usage | None = None
        candidate: Candidate | None = None
        status = 500
        try:
            routed = await self._router.run(model, lambda c: self._chat_once(c, body))
            candidate, status = routed.candidate, 200
            usage = usage_of(routed.value.get("usage"))
            if cached_key is not None and model.cache_ttl_s:
                self._cache.put(cached_key, routed.value, model.cache_ttl_s)
            return Reply(routed.value, self._headers(routed.candidate, routed.attempts))
        except BaseException as exc:
            status = _status_of(exc)
            raise
        finally:
            ticket.settle(usage.total_tokens if usage else 0)
            ticket.release()
            self.account(call, candidate, status, usage)

    def _provider(self, candidate: Candidate, body: JSON) -> Provider:
        config = candidate.deployment.provider
        if UNTRANSLATED in body and config.type != "anthropic":
            raise InvalidGatewayRequest(
                f"content block types {', '.join(body[UNTRANSLATED])} cannot be sent to "
                f"the {config.type} provider of model {candidate.model.name!r}")
        if NEEDS_RESPONSES in body and not (config.type == "openai" and config.responses_api):
            raise InvalidGatewayRequest(
                f"{'; '.join(body[NEEDS_RESPONSES])}: only a provider that speaks the "
                f"Responses API (type openai, responses_api: true) can serve this, and "
                f"model {candidate.model.name!r} is routed to {config.name!r}")
        return self._providers[config.type]

    async def _chat_once(self, candidate: Candidate, body: JSON) -> JSON:
        provider = self._provider(candidate, body)
        request = provider.chat_request(body, candidate.deployment)
        data = await self._upstream.call(provider, request, candidate.model.timeout_s)
        return provider.chat_response(data, int(self._clocks.wall()))

    async def chat_stream(self, key: VirtualKey, body: JSON, *, api: str = "chat",
                          size: int = 0) -> StreamReply:
        """Open the upstream stream (errors are raised here, before any byte is sent)
        and return the chunks to relay and the response headers."""
        model = self._resolve(key, body)
        _check_messages(body)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        call = Call(key, model.name, api, True, self._clocks.monotonic())
        cached_key = cache_key("chat", body) if model.cache_ttl_s else None
        if cached_key is not None and (hit := self._cache.get(cached_key)) is not None:
            self.account(call, None, 200, usage_of(hit.get("usage")), cache_hit=True)
            return StreamReply(_replay(unfold(hit, include_usage)), {"x-lamina-cache": "hit"},
                               _nothing)
        ticket = self._admit(key, model, body, size)
        try:
            routed = await self._router.run(model, lambda c: self._open_stream(c, body))
        except BaseException as exc:  # cancellation too: never leak a parallel slot
            ticket.release()
            self.account(call, None, _status_of(exc), None)
            raise
        relay = Relay(routed.value, ticket, include_usage, self._clocks.monotonic,
                      lambda status, usage, ttft, completion: self._stream_done(
                          call, routed.candidate, model, cached_key, status, usage, ttft,
                          completion), fold=cached_key is not None)
        return StreamReply(relay.chunks(), self._headers(routed.candidate, routed.attempts),
                           relay.close)

    async def _open_stream(self, candidate: Candidate, body: JSON) -> OpenStream:
        provider = self._provider(candidate, body)
        request = provider.chat_request(body, candidate.deployment)
        stack = AsyncExitStack()
        try:
            chunks = await stack.enter_async_context(
                self._upstream.stream(provider, request, candidate.model.timeout_s))
        except BaseException:
            await stack.aclose()
            raise
        return OpenStream(stack, chunks, provider.stream_events(),
                          provider.chat_stream(int(self._clocks.wall())))

    def _stream_done(self, call: Call, candidate: Candidate, model: ModelConfig,
                     cached_key: str | None, status: int, usage: Usage | None,
                     ttft: float | None, completion: JSON | None) -> None:
        if status == 200 and cached_key is not None and completion and model.cache_ttl_s:
            self._cache.put(cached_key, completion, model.cache_ttl_s)
        self.account(call, candidate, status, usage, ttft=ttft)

    # -- token counting -------------------------------------------------------------

    async def count_tokens(self, key: VirtualKey, body: JSON) -> int:
        """Counted by the first deployment of the model whose provider can count."""
        model = self._resolve(key, body)
        refusal: Exception | None = None
        for candidate in self._router.plan(model):
            try:
                provider = self._provider(candidate, body)
                request = provider.count_tokens_request(body, candidate.deployment)
            except InvalidGatewayRequest as exc:
                refusal = exc
                continue
            data = await self._upstream.call(provider, request, candidate.model.timeout_s)
            return provider.count_tokens_response(data)
        raise refusal or InvalidGatewayRequest(f"model {model.name!r} cannot count tokens")

    # -- embeddings -----------------------------------------------------------------

    async def embeddings(self, key: VirtualKey, body: JSON, *, size: int = 0) -> Reply:
        model = self._resolve(key, body)
        if body.get("input") in (None, "", []):
            raise InvalidGatewayRequest("'input' is required (a string or a list)")
        call = Call(key, model.name, "embeddings", False, self._clocks.monotonic())
        ticket = self._admit(key, model, body, size)
        usage: Usage | None = None
        candidate: Candidate | None = None
        status = 500
        try:
            routed = await self._router.run(model, lambda c: self._embed_once(c, body))
            candidate, status = routed.candidate, 200
            usage = usage_of(routed.value.get("usage"))
            return Reply(routed.value, self._headers(routed.candidate, routed.attempts))
        except BaseException as exc:
            status = _status_of(exc)
            raise
        finally:
            ticket.settle(usage.total_tokens if usage else 0)
            ticket.release()
            self.account(call, candidate, status, usage)

    async def _embed_once(self, candidate: Candidate, body: JSON) -> JSON:
        provider = self._providers[candidate.deployment.provider.type]
        request = provider.embeddings_request(body, candidate.deployment)
        data = await self._upstream.call(provider, request, candidate.model.timeout_s)
        return provider.embeddings_response(data)


def _check_messages(body: JSON) -> None:
    if NEEDS_RESPONSES in body:
        return  # only a native Responses deployment will serve it, from its own input
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages \
            or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise InvalidGatewayRequest("'messages' must be a non-empty list of messages, "
                                    "each with a 'role'")


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, asyncio.CancelledError):
        return CLIENT_CLOSED
    return int(getattr(exc, "status", 500))


async def _replay(chunks: list[JSON]) -> AsyncIterator[JSON]:
    for chunk in chunks:
        yield chunk




async def _nothing() -> None:
    return None
