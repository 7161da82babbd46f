from __future__ import annotations

from lamina.gateway.cache import ResponseCache, cache_key
from lamina.gateway.folding import Folder, unfold

COMPLETION = {
    "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "hi", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
}


def test_cache_key_ignores_streaming_and_key_order() -> None:
    a = cache_key("chat", {"model": "m", "messages": [], "stream": True, "user": "u"})
    b = cache_key("chat", {"messages": [], "model": "m"})
    assert a == b != cache_key("chat", {"messages": [], "model": "n"})


def test_ttl_and_lru() -> None:
    now = [0.0]
    cache = ResponseCache(lambda: now[0], max_entries=2)
    cache.put("a", {"v": 1}, 10)
    cache.put("b", {"v": 2}, 10)
    assert cache.get("a") == {"v": 1}
    cache.put("c", {"v": 3}, 10)  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("a") is not None
    now[0] = 10
    assert cache.get("a") is None


def test_unfold_then_fold_round_trips() -> None:
    folder = Folder()
    for chunk in unfold(COMPLETION, include_usage=True):
        folder.feed(chunk)
    assert folder.completion() == COMPLETION
