"""The gateway's Prometheus metrics, in a registry of its own (never the process-wide
default one, so two gateways in one process, as in tests, never share counters).

Per call, counted from the accounting writer's batches (never on the request path):

    lamina_gateway_requests_total             key, model, provider, upstream_model,
                                              api, status, cache ("hit" | "miss")
    lamina_gateway_tokens_total               key, model, provider, upstream_model,
                                              type ("prompt" | "completion" | "cached")
    lamina_gateway_cost_usd_total             key, model, provider, upstream_model
    lamina_gateway_request_duration_seconds   model, provider, upstream_model (histogram)
    lamina_gateway_time_to_first_token_seconds model, provider, upstream_model (streams)
    lamina_gateway_fallbacks_total            model, provider, upstream_model

Read live at scrape time (nothing to update per call):

    lamina_gateway_requests_in_flight         model
    lamina_gateway_circuit_state              model, provider, upstream_model, state
                                              (1 for the current state, 0 for others)
    lamina_gateway_circuit_consecutive_failures model, provider, upstream_model
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lamina.gateway.usage import UsageRecord

PREFIX = "lamina_gateway"
# LLM calls take from tens of milliseconds (a cache, a small model) to minutes.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
CIRCUIT_STATES = ("closed", "open", "half_open")

# What a deployment listing gives per deployment (GatewayService.deployments).
Deployments = Callable[[], list[dict[str, Any]]]


class CallMetrics:
    """Counters and histograms of finished calls."""

    def __init__(self, registry: CollectorRegistry) -> None:
        call = ("key", "model", "provider", "upstream_model")
        deployment = ("model", "provider", "upstream_model")
        self._requests = Counter(
            f"{PREFIX}_requests",
            "Gateway calls, by outcome.",
            (*call, "api", "status", "cache"),
            registry=registry,
        )
        self._tokens = Counter(
            f"{PREFIX}_tokens",
            "Tokens of gateway calls, as the provider counted them.",
            (*call, "type"),
            registry=registry,
        )
        self._cost = Counter(
            f"{PREFIX}_cost_usd",
            "Cost of gateway calls in US dollars (cache hits cost 0).",
            call,
            registry=registry,
        )
        self._latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from a call's admission to its last byte.",
            deployment,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self._ttft = Histogram(
            f"{PREFIX}_time_to_first_token_seconds",
            "Time from a streamed call's admission to its first content chunk.",
            deployment,
            registry=registry,
            buckets=TTFT_BUCKETS,
        )
        self._fallbacks = Counter(
            f"{PREFIX}_fallbacks",
            "Calls answered by a fallback model's deployment.",
            deployment,
            registry=registry,
        )
        # Labelled children by label values: `.labels()` costs a lock and a tuple
        # build each time, this a dict lookup.
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._outcomes: dict[tuple[str, ...], Any] = {}

    def observe(self, records: Sequence[UsageRecord]) -> None:
        # Counters are summed over the batch and moved once per label set: a batch of
        # hundreds of calls usually has a handful of them. Histograms take each call.
        outcomes: dict[tuple[str, ...], int] = {}
        sums: dict[tuple[str, ...], list[float]] = {}
        for r in records:
            labels = (r.key_name, r.model, r.provider, r.upstream_model)
            outcome = (*labels, r.api, str(r.status), "hit" if r.cache_hit else "miss")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            total = sums.get(labels)
            if total is None:
                total = sums[labels] = [0, 0, 0, 0.0, 0]
            total[0] += r.prompt_tokens
            total[1] += r.completion_tokens
            total[2] += r.cached_tokens
            total[3] += r.cost_usd
            total[4] += r.fallback
            children = self._of(labels)
            children[4].observe(r.latency_ms / 1000)
            if r.ttft_ms is not None:
                children[5].observe(r.ttft_ms / 1000)
        for outcome_labels, count in outcomes.items():
            requests = self._outcomes.get(outcome_labels)
            if requests is None:
                requests = self._requests.labels(*outcome_labels)
                self._outcomes[outcome_labels] = requests
            requests.inc(count)
        for call_labels, total in sums.items():
            prompt, completion, cached, cost, _, _, fallbacks = self._of(call_labels)
            for child, amount in ((prompt, total[0]), (completion, total[1]),
                                  (cached, total[2]), (cost, total[3]),
                                  (fallbacks, total[4])):  # fmt: skip
                if amount:
                    child.inc(amount)

    def _of(self, labels: tuple[str, ...]) -> tuple[Any, ...]:
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = self._make(labels)
        return children

    def _make(self, labels: tuple[str, ...]) -> tuple[Any, ...]:
        deployment = labels[1:]
        return (
            self._tokens.labels(*labels, "prompt"),
            self._tokens.labels(*labels, "completion"),
            self._tokens.labels(*labels, "cached"),
            self._cost.labels(*labels),
            self._latency.labels(*deployment),
            self._ttft.labels(*deployment),
            self._fallbacks.labels(*deployment),
        )


class LiveState(Collector):
    """Calls in flight and circuit states, read when scraped."""

    def __init__(self, in_flight: Mapping[str, int], deployments: Deployments) -> None:
        self._in_flight = in_flight
        self._deployments = deployments

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            f"{PREFIX}_requests_in_flight",
            "Gateway calls admitted and not finished.",
            labels=("model",),
        )
        for model, count in sorted(self._in_flight.items()):
            in_flight.add_metric((model,), count)
        yield in_flight
        labels = ("model", "provider", "upstream_model")
        state = GaugeMetricFamily(
            f"{PREFIX}_circuit_state",
            "Each deployment's circuit breaker: 1 for its current state, 0 for the others.",
            labels=(*labels, "state"),
        )
        failures = GaugeMetricFamily(
            f"{PREFIX}_circuit_consecutive_failures",
            "Failures in a row of each deployment (the circuit opens at the threshold).",
            labels=labels,
        )
        for d in self._deployments():
            where = (d["model"], d["provider"], d["upstream_model"])
            for name in CIRCUIT_STATES:
                state.add_metric((*where, name), 1.0 if d["circuit"] == name else 0.0)
            failures.add_metric(where, d["consecutive_failures"])
        yield state
        yield failures
