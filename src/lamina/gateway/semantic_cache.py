"""The semantic cache's index: prompt embeddings → cached answers, nearest by cosine.

A request's *scope* is everything that changes the answer except the prompt — the
model asked for, every parameter (temperature, tools, response_format ...) and the
embeddings model that made the vectors — so an answer is only ever reused for a
request that differs in wording alone. Its *prompt text* is the messages' text, one
`role: text` line each with whitespace collapsed; a conversation that carries images,
audio or tool calls has none, and is cached exactly or not at all.

Search is a linear scan in plain Python (lamina does not depend on numpy): vectors
are unit-normalized when stored, so cosine is a dot product, ~12 µs per entry at 384
dimensions (12 ms for 1,000). That is why each model's index is bounded
(`max_entries`, least recently used evicted first) and expired entries are dropped as
the scan meets them.
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import orjson

from lamina.gateway.providers.anthropic import NATIVE, UNTRANSLATED
from lamina.gateway.providers.openai_responses import NATIVE_RESPONSES

JSON = dict[str, Any]
_NOT_SCOPE = frozenset({"messages", "stream", "stream_options", "user", "metadata"})
# The private members that carry the request as the client wrote it (/v1/messages,
# /v1/responses): their prompt is what `messages` says, the rest of them is scope.
_NATIVE_PROMPT = {
    NATIVE: frozenset({"system", "messages", "metadata"}),
    NATIVE_RESPONSES: frozenset({"input", "instructions", "metadata", "user"}),
}


def prompt_text(body: JSON) -> str | None:
    """The text that is embedded, or None when the prompt is not text alone."""
    if body.get(UNTRANSLATED):
        return None  # blocks (documents, ...) that `messages` does not carry
    lines = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict) or message.get("tool_calls"):
            return None
        content = message.get("content")
        if isinstance(content, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                return None
            content = " ".join(str(p.get("text") or "") for p in content)
        elif content is None:
            content = ""
        elif not isinstance(content, str):
            return None
        lines.append(f"{message.get('role')}: {' '.join(content.split())}")
    return "\n".join(lines) or None


def scope_of(api: str, body: JSON, embeddings_model: str) -> str:
    rest = {k: v for k, v in body.items() if k not in _NOT_SCOPE}
    for member, prompt in _NATIVE_PROMPT.items():
        native = rest.get(member)
        if isinstance(native, dict):
            rest[member] = {k: v for k, v in native.items() if k not in prompt}
    raw = orjson.dumps([api, embeddings_model, rest], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


def unit(vector: Sequence[float]) -> tuple[float, ...] | None:
    """The vector scaled to length 1; None for a zero (or empty) vector."""
    norm = math.sqrt(sum(x * x for x in vector))
    if not norm or not math.isfinite(norm):
        return None
    return tuple(x / norm for x in vector)


@dataclass(slots=True)
class _Entry:
    scope: str
    vector: tuple[float, ...]
    value: JSON
    expires: float


class SemanticIndex:
    """Per model name: its entries in least-recently-used order."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock  # monotonic
        self._models: dict[str, OrderedDict[int, _Entry]] = {}
        self._ids = count()

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._models.values())

    def nearest(
        self, model: str, scope: str, vector: tuple[float, ...], threshold: float
    ) -> tuple[JSON, float] | None:
        """The closest live entry of the same scope at or above `threshold`, and its
        similarity; a hit becomes the most recently used."""
        entries = self._models.get(model)
        if not entries:
            return None
        now = self._clock()
        best_id, best, best_score = -1, None, threshold
        for entry_id, entry in list(entries.items()):
            if now >= entry.expires:
                del entries[entry_id]
                continue
            if entry.scope != scope or len(entry.vector) != len(vector):
                continue
            score = sum(map(operator.mul, entry.vector, vector))
            if score >= best_score:
                best_id, best, best_score = entry_id, entry, score
        if best is None:
            return None
        entries.move_to_end(best_id)
        return best.value, best_score

    def add(
        self,
        model: str,
        scope: str,
        vector: tuple[float, ...],
        value: JSON,
        ttl_s: float,
        max_entries: int,
    ) -> None:
        entries = self._models.setdefault(model, OrderedDict())
        entries[next(self._ids)] = _Entry(scope, vector, value, self._clock() + ttl_s)
        while len(entries) > max_entries:
            entries.popitem(last=False)
