from __future__ import annotations

import pytest

from lamina.gateway.config import ConfigError, interpolate, parse_config

PROVIDERS = [{"name": "oa", "type": "openai", "api_key": "${KEY}"},
             {"name": "an", "type": "anthropic", "api_key": "${MISSING:-fallback}"}]


def test_interpolation_from_the_given_mapping() -> None:
    assert interpolate({"a": ["${X}-${Y:-d}"]}, {"X": "1"}) == {"a": ["1-d"]}
    with pytest.raises(ConfigError, match="NOPE"):
        interpolate("${NOPE}", {})


def test_full_config() -> None:
    config = parse_config({
        "providers": PROVIDERS,
        "models": [{"name": "fast", "routes": [{"provider": "oa", "model": "m", "weight": 3},
                                               {"provider": "an", "model": "c"}],
                    "fallbacks": ["backup"], "retries": 2, "timeout_s": 5,
                    "cache": {"ttl_s": 300}},
                   {"name": "backup", "routes": [{"provider": "an", "model": "c"}],
                    "retries": 0}],
        "keys": [{"key": "${KEY}", "name": "app", "models": ["fast"], "rpm": 600,
                  "budget_usd": 50}],
        "prompts": [{"name": "sum", "model": "fast", "template": "{{x}}"}],
        "pricing": {"m": {"input_per_mtok": 1, "output_per_mtok": 2}},
    }, {"KEY": "secret"})
    fast = config.models["fast"]
    assert [r.weight for r in fast.routes] == [3.0, 1.0]
    assert (fast.retries, fast.timeout_s, fast.cache_ttl_s) == (2, 5.0, 300.0)
    assert config.models["backup"].retries == 0
    assert config.providers["oa"].api_key == "secret"
    assert config.providers["an"].api_key == "fallback"
    assert config.keys[0].secret == "secret"
    assert config.keys[0].key.models == frozenset({"fast"})
    assert (config.keys[0].key.id, config.keys[0].key.source) == ("config:app", "config")
    assert config.prompts["sum"][0].version == 1
    assert config.pricing["m"].output_per_mtok == 2


def test_empty_config() -> None:
    config = parse_config({}, {})
    assert config.models == {} and config.keys == ()


@pytest.mark.parametrize(("raw", "message"), [
    ({"providers": [{"name": "x", "type": "palm"}]}, "type 'palm'"),
    ({"providers": PROVIDERS, "models": [{"name": "m"}]}, "routes"),
    ({"providers": PROVIDERS, "models": [{"name": "m", "routes": [
        {"provider": "zz", "model": "a"}]}]}, "unknown provider 'zz'"),
    ({"providers": PROVIDERS, "models": [{"name": "m", "fallbacks": ["q"], "routes": [
        {"provider": "oa", "model": "a"}]}]}, "unknown model 'q'"),
    ({"keys": [{"name": "k"}]}, r"keys\[0\].key is required"),
    ({"keys": [{"name": "k", "key": "s", "budget_period": "week"}]}, "budget_period"),
])
def test_refusals_name_the_entry(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, {"KEY": "k"})
