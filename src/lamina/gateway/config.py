"""The gateway's configuration: a pure function from the `gateway:` mapping to values.

`${NAME}` (and `${NAME:-default}`) in any string is replaced from the environment
mapping passed in; nothing here reads `os.environ`. Every refusal names the path of
the offending entry (`gateway.models[1].routes[0].provider`) so the user can fix it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lamina.errors import ValidationError
from lamina.gateway.pricing import Price

PROVIDER_TYPES = frozenset({"openai", "anthropic", "gemini", "cohere", "bedrock"})
BUDGET_PERIODS = frozenset({"total", "day", "month"})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValidationError):
    code = "InvalidGatewayConfig"


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    type: str
    base_url: str | None = None
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Azure OpenAI: `?api-version=` and deployment paths instead of a model field.
    api_version: str | None = None
    # OpenAI: serve /v1/responses requests natively (POST {base_url}/responses).
    responses_api: bool = False
    # Bedrock: SigV4 credentials and region (or `api_key`, a Bedrock API key).
    region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None


@dataclass(frozen=True, slots=True)
class RouteConfig:
    provider: str
    model: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ModelConfig:
    name: str
    routes: tuple[RouteConfig, ...]
    fallbacks: tuple[str, ...] = ()
    retries: int = 1
    backoff_s: float = 0.25
    timeout_s: float = 60.0
    cache_ttl_s: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


@dataclass(frozen=True, slots=True)
class KeyConfig:
    key: str
    name: str
    models: frozenset[str] | None = None  # None: every model
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: str = "total"
    expires_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PromptConfig:
    name: str
    model: str
    template: str
    version: int = 1


@dataclass(frozen=True, slots=True)
class CircuitConfig:
    failures: int = 5
    cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    keys: tuple[KeyConfig, ...] = ()
    # name → its versions, oldest first
    prompts: Mapping[str, tuple[PromptConfig, ...]] = field(default_factory=dict)
    pricing: Mapping[str, Price] = field(default_factory=dict)
    circuit: CircuitConfig = CircuitConfig()


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Replace `${NAME}` / `${NAME:-default}` in every string of `value`."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [interpolate(v, env) for v in value]
    return value


def parse_config(raw: Mapping[str, Any] | None, env: Mapping[str, str]) -> GatewayConfig:
    """Build the gateway's configuration from the `gateway:` mapping of the YAML file."""
    data = interpolate(dict(raw or {}), env)
    providers = {p.name: p for p in (_provider(e, f"gateway.providers[{i}]")
                                     for i, e in enumerate(_list(data, "providers")))}
    models = {m.name: m for m in (_model(e, f"gateway.models[{i}]")
                                  for i, e in enumerate(_list(data, "models")))}
    for model in models.values():
        for r, route in enumerate(model.routes):
            if route.provider not in providers:
                raise ConfigError(f"gateway.models[{model.name}].routes[{r}]: unknown "
                                  f"provider {route.provider!r}")
        for fallback in model.fallbacks:
            if fallback not in models:
                raise ConfigError(f"gateway.models[{model.name}].fallbacks: unknown model "
                                  f"{fallback!r}")
    keys = tuple(_key(e, f"gateway.keys[{i}]") for i, e in enumerate(_list(data, "keys")))
    prompts: dict[str, tuple[PromptConfig, ...]] = {}
    for i, entry in enumerate(_list(data, "prompts")):
        prompt = _prompt(entry, f"gateway.prompts[{i}]")
        if prompt.model not in models:
            raise ConfigError(f"gateway.prompts[{i}].model: unknown model {prompt.model!r}")
        versions = prompts.get(prompt.name, ())
        if any(v.version == prompt.version for v in versions):
            raise ConfigError(f"gateway.prompts[{i}]: {prompt.name!r} version "
                              f"{prompt.version} is defined twice")
        prompts[prompt.name] = tuple(sorted((*versions, prompt), key=lambda v: v.version))
    pricing = {
        str(name): _price(entry, f"gateway.pricing.{name}")
        for name, entry in _mapping(data, "pricing", "gateway").items()
    }
    circuit_raw = _mapping(data, "circuit_breaker", "gateway")
    circuit = CircuitConfig(
        failures=int(circuit_raw.get("failures", 5)),
        cooldown_s=float(circuit_raw.get("cooldown_s", 30.0)),
    )
    return GatewayConfig(providers, models, keys, prompts, pricing, circuit)


def _list(data: Mapping[str, Any], name: str) -> Sequence[Mapping[str, Any]]:
    value = data.get(name) or []
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        raise ConfigError(f"gateway.{name} must be a list of mappings")
    return value


def _mapping(data: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.{name} must be a mapping")
    return value


def _required(entry: Mapping[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{name} is required (a non-empty string)")
    return value


def _optional_int(entry: Mapping[str, Any], name: str, where: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}.{name} must be a non-negative integer")
    return value


def _provider(entry: Mapping[str, Any], where: str) -> ProviderConfig:
    kind = _required(entry, "type", where)
    if kind not in PROVIDER_TYPES:
        raise ConfigError(f"{where}.type {kind!r} is not one of {sorted(PROVIDER_TYPES)}")
    return ProviderConfig(
        name=_required(entry, "name", where),
        type=kind,
        base_url=entry.get("base_url") or None,
        api_key=entry.get("api_key") or None,
        headers={str(k): str(v) for k, v in _mapping(entry, "headers", where).items()},
        api_version=entry.get("api_version") or None,
        responses_api=bool(entry.get("responses_api", False)),
        region=entry.get("region") or None,
        aws_access_key_id=entry.get("aws_access_key_id") or None,
        aws_secret_access_key=entry.get("aws_secret_access_key") or None,
        aws_session_token=entry.get("aws_session_token") or None,
    )


def _model(entry: Mapping[str, Any], where: str) -> ModelConfig:
    routes_raw = entry.get("routes")
    if not isinstance(routes_raw, list) or not routes_raw:
        raise ConfigError(f"{where}.routes must be a non-empty list")
    routes = []
    for r, route in enumerate(routes_raw):
        at = f"{where}.routes[{r}]"
        weight = float(route.get("weight", 1.0))
        if weight <= 0:
            raise ConfigError(f"{at}.weight must be positive")
        routes.append(RouteConfig(_required(route, "provider", at),
                                  _required(route, "model", at), weight))
    fallbacks = entry.get("fallbacks") or []
    if not isinstance(fallbacks, list):
        raise ConfigError(f"{where}.fallbacks must be a list of model names")
    cache = _mapping(entry, "cache", where)
    return ModelConfig(
        name=_required(entry, "name", where),
        routes=tuple(routes),
        fallbacks=tuple(str(f) for f in fallbacks),
        retries=1 if "retries" not in entry else _optional_int(entry, "retries", where) or 0,
        backoff_s=float(entry.get("backoff_s", 0.25)),
        timeout_s=float(entry.get("timeout_s", 60.0)),
        cache_ttl_s=float(cache["ttl_s"]) if "ttl_s" in cache else None,
        rpm=_optional_int(entry, "rpm", where),
        tpm=_optional_int(entry, "tpm", where),
        max_parallel=_optional_int(entry, "max_parallel", where),
    )


def _key(entry: Mapping[str, Any], where: str) -> KeyConfig:
    models = entry.get("models")
    period = str(entry.get("budget_period", "total"))
    if period not in BUDGET_PERIODS:
        raise ConfigError(f"{where}.budget_period must be one of {sorted(BUDGET_PERIODS)}")
    expires = entry.get("expires_at")
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires)
    budget = entry.get("budget_usd")
    return KeyConfig(
        key=_required(entry, "key", where),
        name=_required(entry, "name", where),
        models=frozenset(str(m) for m in models) if models is not None else None,
        rpm=_optional_int(entry, "rpm", where),
        tpm=_optional_int(entry, "tpm", where),
        max_parallel=_optional_int(entry, "max_parallel", where),
        budget_usd=float(budget) if budget is not None else None,
        budget_period=period,
        expires_at=expires if isinstance(expires, datetime) else None,
        metadata={str(k): str(v) for k, v in _mapping(entry, "metadata", where).items()},
    )


def _prompt(entry: Mapping[str, Any], where: str) -> PromptConfig:
    return PromptConfig(
        name=_required(entry, "name", where),
        model=_required(entry, "model", where),
        template=_required(entry, "template", where),
        version=int(entry.get("version", 1)),
    )


def _price(entry: Any, where: str) -> Price:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping of per-million-token prices")
    return Price(
        input_per_mtok=float(entry.get("input_per_mtok", 0.0)),
        output_per_mtok=float(entry.get("output_per_mtok", 0.0)),
        cache_read_per_mtok=(float(entry["cache_read_per_mtok"])
                             if "cache_read_per_mtok" in entry else None),
        cache_write_per_mtok=(float(entry["cache_write_per_mtok"])
                              if "cache_write_per_mtok" in entry else None),
    )
