"""Exact-match response cache: the normalized request → the answer, for a TTL.

Normalized: the model name the client asked for plus the request body with keys
sorted and the members that do not change the answer (stream, stream_options, user)
removed, so a streamed and a plain request share an entry. In memory, LRU-bounded.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

_IGNORED = frozenset({"stream", "stream_options", "user", "metadata"})


def cache_key(api: str, body: dict[str, Any]) -> str:
    normalized = {k: v for k, v in body.items() if k not in _IGNORED}
    raw = orjson.dumps([api, normalized], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


class ResponseCache:
    def __init__(self, clock: Callable[[], float], max_entries: int = 10_000) -> None:
        self._clock = clock  # monotonic
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

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
