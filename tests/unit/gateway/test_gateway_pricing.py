from __future__ import annotations

import pytest

from lamina.gateway.pricing import Price, PriceBook, Usage, cost_usd, matches


def test_shipped_data_prices_known_models() -> None:
    book = PriceBook.load({})
    mini = book.price("openai", "gpt-4o-mini")
    haiku = book.price("anthropic", "claude-3-5-haiku-latest")
    assert mini is not None and mini.input_per_mtok > 0 and mini.output_per_mtok > 0
    assert haiku is not None and haiku.cache_read_per_mtok is not None
    # An OpenAI-compatible server serving Anthropic's model is priced by the maker.
    assert book.price("openai", "claude-3-5-haiku-20241022") == haiku
    assert book.price("openai", "my-own-finetune-xyz") is None


def test_override_wins() -> None:
    book = PriceBook.load({"gpt-4o-mini": Price(1, 2)})
    assert book.price("openai", "gpt-4o-mini") == Price(1, 2)


def test_cost_splits_cached_tokens() -> None:
    price = Price(input_per_mtok=2, output_per_mtok=10, cache_read_per_mtok=1)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, cached_tokens=500_000)
    assert cost_usd(price, usage) == pytest.approx(0.5 * 2 + 0.5 * 1 + 0.1 * 10)


def test_match_clauses() -> None:
    rule = {"or": [{"starts_with": "gpt-4o"}, {"and": [{"contains": "x"}, {"regex": "^y"}]}]}
    assert matches(rule, "GPT-4o-mini") and matches(rule, "yx") and not matches(rule, "xy")
