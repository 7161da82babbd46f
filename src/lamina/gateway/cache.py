"""The response cache: exact match first, then (where configured) semantic.

Exact: the model name the client asked for plus the request body with keys sorted and
the members that do not change the answer (stream, stream_options, user) removed, so a
streamed and a plain request share an entry. In memory, LRU-bounded.

Semantic (`cache.semantic` on a model): on an exact miss the prompt's text is embedded
by another gateway model and the nearest cached answer of the same scope is served when
its cosine similarity reaches the threshold (semantic_cache.py). The service asks one
question, `lookup`, and after a miss hands the answer back with `store`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from lamina.gateway.config import ModelConfig
from lamina.gateway.semantic_cache import SemanticIndex, prompt_text, scope_of, unit

_IGNORED = frozenset({"stream", "stream_options", "user", "metadata"})

# (gateway model name, text) → the text's embedding
Embed = Callable[[str, str], Awaitable[list[float]]]


def cache_key(api: str, body: dict[str, Any]) -> str:
    normalized = {k: v for k, v in body.items() if k not in _IGNORED}
    raw = orjson.dumps([api, normalized], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Probe:
    """Where a semantic miss's answer goes in the index."""

    model: str
    scope: str
    vector: tuple[float, ...]
    max_entries: int


@dataclass(frozen=True, slots=True)
class Lookup:
    """One request's cache outcome. `outcome` is the `x-lamina-cache` header value."""

    key: str | None = None  # None: the model is not cached
    ttl_s: float = 0.0
    hit: dict[str, Any] | None = None
    outcome: str = "miss"  # hit | semantic-hit | miss
    probe: Probe | None = None

    @property
    def enabled(self) -> bool:
        return self.key is not None


NOT_CACHED = Lookup()


class ResponseCache:
    def __init__(
        self, clock: Callable[[], float], max_entries: int = 10_000, embed: Embed | None = None
    ) -> None:
        self._clock = clock  # monotonic
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._embed = embed
        self._semantic = SemanticIndex(clock)
        self._log = logging.getLogger("lamina.gateway.cache")

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        self._entries[key] = (self._clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def lookup(self, model: ModelConfig, api: str, body: dict[str, Any]) -> Lookup:
        if not model.cache_ttl_s:
            return NOT_CACHED
        key = cache_key(api, body)
        if (hit := self.get(key)) is not None:
            return Lookup(key, model.cache_ttl_s, hit, "hit")
        semantic = model.cache_semantic
        text = prompt_text(body) if semantic is not None and self._embed else None
        if semantic is None or self._embed is None or text is None:
            return Lookup(key, model.cache_ttl_s)
        try:
            vector = unit(await self._embed(semantic.embeddings_model, text))
        except Exception as exc:
            # The cache is an optimisation: an embeddings model that is down must not
            # fail the call, which goes upstream as if the cache were exact-only.
            self._log.warning(
                "semantic cache of model %r: embedding with %r failed: %s",
                model.name,
                semantic.embeddings_model,
                exc,
            )
            return Lookup(key, model.cache_ttl_s)
        if vector is None:
            return Lookup(key, model.cache_ttl_s)
        probe = Probe(
            model.name, scope_of(api, body, semantic.embeddings_model), vector, semantic.max_entries
        )
        near = self._semantic.nearest(probe.model, probe.scope, vector, semantic.threshold)
        if near is not None:
            return Lookup(key, model.cache_ttl_s, near[0], "semantic-hit", probe)
        return Lookup(key, model.cache_ttl_s, probe=probe)

    def store(self, lookup: Lookup, value: dict[str, Any]) -> None:
        """Keep a fresh answer (after a miss) under its exact key and its embedding."""
        if lookup.key is None or lookup.hit is not None:
            return
        self.put(lookup.key, value, lookup.ttl_s)
        probe = lookup.probe
        if probe is not None:
            self._semantic.add(
                probe.model, probe.scope, probe.vector, value, lookup.ttl_s, probe.max_entries
            )
