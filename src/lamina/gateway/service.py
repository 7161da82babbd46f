"""The gateway's request pipeline, one piece for every API:

    model known? → key may use it? → budget left? → cache hit? → within limits?
    → router (weights, retries, fallbacks, circuits) → provider transform → upstream
    → the call's record: usage, cost, debit, metrics, span, bodies (queued; written
      and exported off the request path)

Chat, embeddings, messages, responses and prompts all go through `_unary` or
`chat_stream`; they differ only in how the body is checked and which provider
transform is called. Inbound formats other than OpenAI's are translated before they
get here; everything in this module speaks OpenAI shapes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from lamina.gateway.cache import NOT_CACHED, Lookup, ResponseCache
from lamina.gateway.config import GatewayConfig, ModelConfig, PromptConfig
from lamina.gateway.errors import (
    BudgetExceeded,
    InvalidGatewayRequest,
    ModelNotFound,
    RateLimited,
)
from lamina.gateway.folding import unfold
from lamina.gateway.health import Health
from lamina.gateway.keys import Keyring, VirtualKey
from lamina.gateway.limits import Limiter, Limits, Ticket, estimate_tokens
from lamina.gateway.pricing import PriceBook, Usage, cost_usd
from lamina.gateway.prompts import PromptStore, merged
from lamina.gateway.providers import JSON, Provider, provider_for
from lamina.gateway.providers.anthropic import UNTRANSLATED
from lamina.gateway.providers.base import usage_of
from lamina.gateway.providers.local_embeddings import LocalEmbeddingsProvider
from lamina.gateway.providers.openai import OpenAIStream
from lamina.gateway.providers.openai_responses import NEEDS_RESPONSES
from lamina.gateway.router import Candidate, Router
from lamina.gateway.spend import Hold, SpendLedger
from lamina.gateway.streaming import CLIENT_CLOSED, OpenStream, Relay
from lamina.gateway.telemetry import InFlight, Telemetry
from lamina.gateway.upstream import Upstream
from lamina.gateway.usage import Debit, Exchange, UsageRecord, UsageWriter

NO_USAGE = Usage()

# A limiter scope: (id, label for messages, limits).
Scope = tuple[str, str, Limits]

# One provider call for a routed candidate: (candidate, body) → OpenAI-shaped answer.
Once = Callable[[Candidate, JSON], Awaitable[JSON]]


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
    # The same chunks, each with the provider's own SSE event when the client may be
    # sent it as it is (Relay.sent), where the provider speaks OpenAI's chunks; None
    # elsewhere. Iterate this or `chunks`, not both.
    verbatim: AsyncIterator[tuple[JSON, bytes | None]] | None = None


class Admission:
    """What a call holds while in flight: its rate-limit ticket, its budget hold and
    its place in the in-flight count. Released once, however often asked."""

    __slots__ = ("_hold", "_in_flight", "_model", "_released", "_ticket")

    def __init__(self, ticket: Ticket, hold: Hold, in_flight: InFlight, model: str) -> None:
        self._ticket, self._hold = ticket, hold
        self._in_flight, self._model = in_flight, model
        self._released = False
        in_flight.enter(model)

    def settle(self, tokens: int) -> None:
        self._ticket.settle(tokens)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._ticket.release()
            self._hold.release()
            self._in_flight.leave(self._model)


@dataclass(slots=True)
class Call:
    """One call, from the moment its model is known until its record is queued."""

    key: VirtualKey
    model: ModelConfig
    api: str  # "chat" | "messages" | "responses" | "prompt" | "embeddings"
    stream: bool
    body: JSON
    started: float
    lookup: Lookup = NOT_CACHED  # the cache's outcome, once asked
    admission: Admission | None = None  # set once within limits


class GatewayService:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        keyring: Keyring,
        ledger: SpendLedger,
        upstream: Upstream,
        writer: UsageWriter,
        clocks: Clocks,
        rng: random.Random,
        sleep: Callable[[float], Awaitable[None]],
        prompt_store: PromptStore | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.keyring = keyring
        self.prompt_store = prompt_store
        self.ledger = ledger
        self.telemetry = telemetry or Telemetry.disabled()
        self._tracing = self.telemetry.tracing  # read per call: a field, not a property
        self._upstream = upstream
        self._writer = writer
        self._clocks = clocks
        self._rng = rng
        self._sleep = sleep
        self._limiter = Limiter(clocks.monotonic)
        self._cache = ResponseCache(clocks.monotonic, embed=self._embed_text)
        self._health = Health(config.circuit, clocks.monotonic)
        self._providers: dict[str, Provider] = {}
        self._key_scopes: dict[str, tuple[VirtualKey, Scope]] = {}
        self._model_scopes: dict[str, tuple[ModelConfig, Scope]] = {}
        self.reconfigure(config)
        self.telemetry.watch(self)

    def reconfigure(self, config: GatewayConfig) -> None:
        """Swap in a new configuration; limits, health, cache and spend carry over."""
        self.config = config
        self._router = Router(config.providers, config.models, self._health, self._rng, self._sleep)
        self._prices = PriceBook.load(config.pricing)
        # Kept across reloads: a local-embeddings provider holds its loaded models.
        self._providers = {
            p.type: self._providers.get(p.type) or provider_for(p.type)
            for p in config.providers.values()
        }
        self.keyring.use_config(config.keys)

    # -- what the admin API and the metrics read ------------------------------------

    def deployments(self) -> list[dict[str, Any]]:
        """Every model's deployments and the state of their circuits."""
        out = []
        for model in self.config.models.values():
            for route in model.routes:
                deployment_id = f"{route.provider}/{route.model}"
                out.append(
                    {
                        "model": model.name,
                        "provider": route.provider,
                        "upstream_model": route.model,
                        "weight": route.weight,
                        "circuit": self._health.state(deployment_id).value,
                        "consecutive_failures": self._health.failures(deployment_id),
                    }
                )
        return out

    def prompts(self) -> dict[str, tuple[PromptConfig, ...]]:
        """Every template version: the config file's and those published since."""
        published = self.prompt_store.published if self.prompt_store else {}
        return merged(self.config.prompts, published)

    def model_names(self, key: VirtualKey) -> list[str]:
        return [name for name in self.config.models if key.allows(name)]

    # -- the APIs ---------------------------------------------------------------------

    async def chat(self, key: VirtualKey, body: JSON, *, api: str = "chat", size: int = 0) -> Reply:
        call = self._open(key, body, api, stream=False, check=_check_messages)
        return await self._unary(call, size, self._chat_once)

    async def embeddings(self, key: VirtualKey, body: JSON, *, size: int = 0) -> Reply:
        call = self._open(key, body, "embeddings", stream=False, check=_check_input)
        return await self._unary(call, size, self._embed_once)

    async def chat_stream(
        self, key: VirtualKey, body: JSON, *, api: str = "chat", size: int = 0
    ) -> StreamReply:
        """Open the upstream stream (errors are raised here, before any byte is sent)
        and return the chunks to relay and the response headers."""
        call = self._open(key, body, api, stream=True, check=_check_messages)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if _cacheable(call) and (hit := await self._cached(call)) is not None:
            headers = {"x-lamina-cache": call.lookup.outcome}
            return StreamReply(_replay(unfold(hit, include_usage)), headers, _nothing)
        admission = self._admit(call, size)
        try:
            routed = await self._router.run(call.model, lambda c: self._open_stream(c, body))
        except BaseException as exc:  # cancellation too: never leak a parallel slot
            self._close(call, None, _status_of(exc), None, error=exc)
            raise
        candidate = routed.candidate

        def done(
            status: int, usage: Usage | None, ttft: float | None, completion: JSON | None
        ) -> None:
            if status == 200 and completion:
                self._remember(call, completion)
            self.account(call, candidate, status, usage, ttft=ttft, response=completion)

        # The folded answer feeds the cache and the span / body log; folding costs per
        # chunk, so only when one of them wants it.
        fold = call.lookup.enabled or self._details_wanted(call)
        relay = Relay(
            routed.value, admission, include_usage, self._clocks.monotonic, done, fold=fold
        )
        return StreamReply(relay.chunks(), self._headers(candidate, routed.attempts), relay.close,
                           relay.sent() if routed.value.verbatim is not None else None)

    async def count_tokens(self, key: VirtualKey, body: JSON) -> int:
        """Counted by the first deployment of the model whose provider can count."""
        model = self._resolve(key, body)
        self.ledger.check(key)
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

    # -- the steps --------------------------------------------------------------------

    def _resolve(self, key: VirtualKey, body: JSON) -> ModelConfig:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise InvalidGatewayRequest("'model' is required (a model name)")
        model = self.config.models.get(name)
        if model is None:
            raise ModelNotFound(f"model {name!r} does not exist; GET /v1/models lists them")
        key.check_model(name)
        return model

    def _open(
        self, key: VirtualKey, body: JSON, api: str, *, stream: bool, check: Callable[[JSON], None]
    ) -> Call:
        model = self._resolve(key, body)
        check(body)
        call = Call(key, model, api, stream, body, self._clocks.monotonic())
        try:
            self.ledger.check(key)
        except BudgetExceeded as exc:
            self.account(call, None, exc.status, None, error=exc)  # a refusal is a call too
            raise
        return call

    async def _cached(self, call: Call) -> JSON | None:
        """The cached answer (exact or semantic), accounted as a hit; None on a miss.
        Only for a `_cacheable` call."""
        call.lookup = await self._cache.lookup(call.model, "chat", call.body)
        hit = call.lookup.hit
        if hit is not None:
            usage = usage_of(hit.get("usage"))
            self.account(call, None, 200, usage, cache_hit=True, response=hit)
        return hit

    def _remember(self, call: Call, answer: JSON) -> None:
        self._cache.store(call.lookup, answer)

    def _admit(self, call: Call, size: int) -> Admission:
        key, model = call.key, call.model
        tokens = estimate_tokens(size)
        hold = self.ledger.reserve(key, self._estimate_usd(key, model, call.body, tokens))
        try:
            ticket = self._limiter.admit([self._key_scope(key), self._model_scope(model)], tokens)
        except RateLimited as exc:
            hold.release()
            self.account(call, None, exc.status, None, error=exc)  # a refusal is a call too
            raise
        except BaseException:
            hold.release()
            raise
        call.admission = Admission(ticket, hold, self.telemetry.in_flight, model.name)
        return call.admission

    # The limiter's scope of a key and of a model, made once per key and model (the key
    # or model replaced, by the admin API or a reload, makes it anew).

    def _key_scope(self, key: VirtualKey) -> Scope:
        known = self._key_scopes.get(key.id)
        if known is None or known[0] is not key:
            known = self._key_scopes[key.id] = (key, (
                f"key:{key.id}", f"key {key.name!r}", Limits(key.rpm, key.tpm, key.max_parallel)))
            if len(self._key_scopes) > 4096:  # keys made per call (the root's): do not grow
                self._key_scopes = {key.id: known}
        return known[1]

    def _model_scope(self, model: ModelConfig) -> Scope:
        known = self._model_scopes.get(model.name)
        if known is None or known[0] is not model:
            known = self._model_scopes[model.name] = (model, (
                f"model:{model.name}", f"model {model.name!r}",
                Limits(model.rpm, model.tpm, model.max_parallel)))
        return known[1]

    async def _unary(self, call: Call, size: int, once: Once) -> Reply:
        if _cacheable(call) and (hit := await self._cached(call)) is not None:
            return Reply(hit, {"x-lamina-cache": call.lookup.outcome})
        self._admit(call, size)
        try:
            routed = await self._router.run(call.model, lambda c: once(c, call.body))
        except BaseException as exc:
            self._close(call, None, _status_of(exc), None, error=exc)
            raise
        answer = routed.value
        self._remember(call, answer)
        usage = usage_of(answer.get("usage"))
        self._close(call, routed.candidate, 200, usage, response=answer)
        return Reply(answer, self._headers(routed.candidate, routed.attempts))

    def _close(
        self,
        call: Call,
        candidate: Candidate | None,
        status: int,
        usage: Usage | None,
        *,
        response: JSON | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Settle and release what the call held, then account it."""
        if call.admission is not None:
            call.admission.settle(usage.total_tokens if usage else 0)
            call.admission.release()
        self.account(call, candidate, status, usage, response=response, error=error)

    def account(
        self,
        call: Call,
        candidate: Candidate | None,
        status: int,
        usage: Usage | None,
        *,
        ttft: float | None = None,
        cache_hit: bool = False,
        response: JSON | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Queue the call's record and debit; everything slow happens in the writer."""
        usage = usage or NO_USAGE
        cost = 0.0 if cache_hit else self._cost(candidate, usage)
        now = self._clocks.monotonic()
        deployment = candidate.deployment if candidate else None
        exchange = None
        if self._details_wanted(call):
            bodies = self.config.log_bodies
            exchange = Exchange(
                request=call.body,
                response=response,
                provider=deployment.provider if deployment else None,
                error=_error_type(error, status),
                bodies=bodies if bodies is not None and bodies.covers(call.model.name) else None,
            )
        self._writer.record(
            UsageRecord(
                ts=self._clocks.wall(),
                key_id=call.key.id,
                key_name=call.key.name,
                model=call.model.name,
                provider=deployment.provider.name if deployment else "",
                upstream_model=deployment.model if deployment else "",
                api=call.api,
                status=status,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                cost_usd=cost,
                latency_ms=(now - call.started) * 1000,
                ttft_ms=(ttft - call.started) * 1000 if ttft is not None else None,
                cache_hit=cache_hit,
                fallback=bool(candidate and candidate.fallback),
                stream=call.stream,
                exchange=exchange,
            )
        )
        row = self.ledger.debit(call.key, cost)
        if row is not None:
            self._writer.record(Debit(row[0], row[1], cost))

    def _details_wanted(self, call: Call) -> bool:
        """Whether the record carries the request and answer: for a span, or for the
        body log. Two attribute reads when neither is on."""
        bodies = self.config.log_bodies
        return self._tracing or (bodies is not None and bodies.covers(call.model.name))

    def _estimate_usd(self, key: VirtualKey, model: ModelConfig, body: JSON, tokens: int) -> float:
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

    @staticmethod
    def _headers(candidate: Candidate, attempts: int) -> dict[str, str]:
        return {
            "x-lamina-provider": candidate.deployment.provider.name,
            "x-lamina-upstream-model": candidate.deployment.model,
            "x-lamina-attempts": str(attempts),
            "x-lamina-fallback": "true" if candidate.fallback else "false",
            "x-lamina-cache": "miss",
        }

    # -- provider calls ---------------------------------------------------------------

    def _provider(self, candidate: Candidate, body: JSON) -> Provider:
        config = candidate.deployment.provider
        if UNTRANSLATED in body and config.type != "anthropic":
            raise InvalidGatewayRequest(
                f"content block types {', '.join(body[UNTRANSLATED])} cannot be sent to "
                f"the {config.type} provider of model {candidate.model.name!r}"
            )
        if NEEDS_RESPONSES in body and not (config.type == "openai" and config.responses_api):
            raise InvalidGatewayRequest(
                f"{'; '.join(body[NEEDS_RESPONSES])}: only a provider that speaks the "
                f"Responses API (type openai, responses_api: true) can serve this, and "
                f"model {candidate.model.name!r} is routed to {config.name!r}"
            )
        return self._providers[config.type]

    async def _chat_once(self, candidate: Candidate, body: JSON) -> JSON:
        provider = self._provider(candidate, body)
        request = provider.chat_request(body, candidate.deployment)
        data = await self._upstream.call(provider, request, candidate.model.timeout_s)
        return provider.chat_response(data, int(self._clocks.wall()))

    async def _embed_once(self, candidate: Candidate, body: JSON) -> JSON:
        provider = self._providers[candidate.deployment.provider.type]
        if isinstance(provider, LocalEmbeddingsProvider):  # runs here, sends nothing
            return await provider.embed(body, candidate.deployment, candidate.model.timeout_s)
        request = provider.embeddings_request(body, candidate.deployment)
        data = await self._upstream.call(provider, request, candidate.model.timeout_s)
        return provider.embeddings_response(data)

    async def _embed_text(self, model_name: str, text: str) -> list[float]:
        """The semantic cache's embeddings: routed like any call (retries, fallbacks),
        but not limited or accounted to a key: it is the gateway's own lookup."""
        model = self.config.models[model_name]
        body: JSON = {"model": model_name, "input": [text]}
        routed = await self._router.run(model, lambda c: self._embed_once(c, body))
        return [float(x) for x in routed.value["data"][0]["embedding"]]

    async def _open_stream(self, candidate: Candidate, body: JSON) -> OpenStream:
        provider = self._provider(candidate, body)
        request = provider.chat_request(body, candidate.deployment)
        stack = AsyncExitStack()
        try:
            chunks = await stack.enter_async_context(
                self._upstream.stream(provider, request, candidate.model.timeout_s)
            )
        except BaseException:
            await stack.aclose()
            raise
        decoder = provider.chat_stream(int(self._clocks.wall()))
        verbatim = decoder if isinstance(decoder, OpenAIStream) else None
        return OpenStream(stack, chunks, provider.stream_events(), decoder, verbatim)


def _check_messages(body: JSON) -> None:
    if NEEDS_RESPONSES in body:
        return  # only a native Responses deployment will serve it, from its own input
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and "role" in m for m in messages)
    ):
        raise InvalidGatewayRequest(
            "'messages' must be a non-empty list of messages, each with a 'role'"
        )


def _cacheable(call: Call) -> bool:
    # Only chat answers are cached: embeddings are cheap and rarely repeated. Checked
    # before awaiting the cache, so an uncached model awaits nothing.
    return call.api != "embeddings" and bool(call.model.cache_ttl_s)


def _check_input(body: JSON) -> None:
    if body.get("input") in (None, "", []):
        raise InvalidGatewayRequest("'input' is required (a string or a list)")


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, asyncio.CancelledError):
        return CLIENT_CLOSED
    return int(getattr(exc, "status", 500))


def _error_type(error: BaseException | None, status: int) -> str | None:
    """A low-cardinality name for what went wrong (OpenTelemetry's `error.type`)."""
    if error is None:
        return str(status) if status >= 400 else None
    if isinstance(error, asyncio.CancelledError):
        return "client_closed_request"
    code = getattr(error, "code", None)
    return code if isinstance(code, str) else type(error).__qualname__


async def _replay(chunks: list[JSON]) -> AsyncIterator[JSON]:
    for chunk in chunks:
        yield chunk


async def _nothing() -> None:
    return None
