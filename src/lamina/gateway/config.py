"""The gateway's configuration: a pure function from the `gateway:` mapping to values.

`${NAME}` (and `${NAME:-default}`) in any string is replaced from the environment
mapping passed in; nothing here reads `os.environ`. Every refusal names the path of
the offending entry (`gateway.models[1].routes[0].provider`) so the user can fix it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from typing import Any

from lamina.errors import ValidationError
from lamina.gateway.keys import KeyConfig, parse_key
from lamina.gateway.pricing import Price

LOCAL_EMBEDDINGS = "local-embeddings"
PROVIDER_TYPES = frozenset({"openai", "anthropic", "gemini", "cohere", "bedrock", LOCAL_EMBEDDINGS})
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
    # local-embeddings: a Hugging Face model name or a local directory, and the torch
    # device it runs on; routes to this provider default to this model. `threads`:
    # torch's CPU threads (process-wide), else torch's default of one per core.
    model: str | None = None
    device: str = "cpu"
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class RouteConfig:
    provider: str
    model: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class SemanticCacheConfig:
    """On an exact-cache miss, serve the cached answer whose prompt embeds closest
    (cosine ≥ threshold) to this one's; `embeddings_model` is a gateway model name."""

    embeddings_model: str
    threshold: float = 0.95
    max_entries: int = 1_000


@dataclass(frozen=True, slots=True)
class ModelConfig:
    name: str
    routes: tuple[RouteConfig, ...]
    fallbacks: tuple[str, ...] = ()
    retries: int = 1
    backoff_s: float = 0.25
    timeout_s: float = 60.0
    cache_ttl_s: float | None = None
    cache_semantic: SemanticCacheConfig | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


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
class TelemetryConfig:
    """Where spans go and who may read the metrics (see docs/gateway.md)."""

    # OTLP/HTTP base URL (spans go to {endpoint}/v1/traces); else the standard
    # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT variables; neither: no spans at all.
    otlp_endpoint: str | None = None
    otlp_headers: Mapping[str, str] = field(default_factory=dict)
    service_name: str = "lamina"
    # GET /gateway/metrics takes root credentials, this bearer token, or (public)
    # nothing: a scraper on a private network.
    metrics_token: str | None = None
    metrics_public: bool = False


@dataclass(frozen=True, slots=True)
class BodyLogConfig:
    """Request and response bodies kept with each call's record, redacted and capped."""

    models: frozenset[str] | None = None  # None: every model
    max_bytes: int = 16_384  # each body, after redaction
    # JSON paths (`messages.*.content`) or bare keys (`user`) to blank, besides the
    # secrets that are always blanked.
    redact: tuple[str, ...] = ()

    def covers(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    keys: tuple[KeyConfig, ...] = ()
    # name → its versions, oldest first
    prompts: Mapping[str, tuple[PromptConfig, ...]] = field(default_factory=dict)
    pricing: Mapping[str, Price] = field(default_factory=dict)
    circuit: CircuitConfig = CircuitConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    log_bodies: BodyLogConfig | None = None  # None: no bodies kept


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
    providers = {
        p.name: p
        for p in (
            _provider(e, f"gateway.providers[{i}]") for i, e in enumerate(_list(data, "providers"))
        )
    }
    models = {
        m.name: m
        for m in (_model(e, f"gateway.models[{i}]") for i, e in enumerate(_list(data, "models")))
    }
    for model in list(models.values()):
        for r, route in enumerate(model.routes):
            if route.provider not in providers:
                raise ConfigError(
                    f"gateway.models[{model.name}].routes[{r}]: unknown provider {route.provider!r}"
                )
        models[model.name] = model = _route_models(model, providers)
        _check_semantic(model, models)
        for fallback in model.fallbacks:
            if fallback not in models:
                raise ConfigError(
                    f"gateway.models[{model.name}].fallbacks: unknown model {fallback!r}"
                )
    keys = tuple(_key(e, f"gateway.keys[{i}]") for i, e in enumerate(_list(data, "keys")))
    prompts: dict[str, tuple[PromptConfig, ...]] = {}
    for i, entry in enumerate(_list(data, "prompts")):
        prompt = _prompt(entry, f"gateway.prompts[{i}]")
        if prompt.model not in models:
            raise ConfigError(f"gateway.prompts[{i}].model: unknown model {prompt.model!r}")
        versions = prompts.get(prompt.name, ())
        if any(v.version == prompt.version for v in versions):
            raise ConfigError(
                f"gateway.prompts[{i}]: {prompt.name!r} version {prompt.version} is defined twice"
            )
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
    return GatewayConfig(
        providers,
        models,
        keys,
        prompts,
        pricing,
        circuit,
        _telemetry(data),
        _log_bodies(data, models),
    )


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
    if kind == LOCAL_EMBEDDINGS:
        _required(entry, "model", where)
        # Refused here, at load, rather than on the first request an hour later. The
        # lookup finds the package without importing it (torch takes seconds).
        if find_spec("sentence_transformers") is None:
            raise ConfigError(
                f"{where}: type local-embeddings needs the sentence-transformers "
                "package, which is not installed; pip install 'lamina[embeddings]'"
            )
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
        model=entry.get("model") or None,
        device=str(entry.get("device") or "cpu"),
        threads=_optional_int(entry, "threads", where) or None,
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
        # An empty model is filled from a local-embeddings provider's own `model`
        # once providers are known (_route_models), and refused otherwise.
        routes.append(
            RouteConfig(_required(route, "provider", at), str(route.get("model") or ""), weight)
        )
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
        cache_semantic=_semantic(cache, f"{where}.cache"),
        rpm=_optional_int(entry, "rpm", where),
        tpm=_optional_int(entry, "tpm", where),
        max_parallel=_optional_int(entry, "max_parallel", where),
    )


def _route_models(model: ModelConfig, providers: Mapping[str, ProviderConfig]) -> ModelConfig:
    routes = []
    for r, route in enumerate(model.routes):
        if not route.model:
            default = providers[route.provider].model
            if default is None:
                raise ConfigError(
                    f"gateway.models[{model.name}].routes[{r}].model is "
                    "required (a non-empty string)"
                )
            route = replace(route, model=default)
        routes.append(route)
    return replace(model, routes=tuple(routes))


def _semantic(cache: Mapping[str, Any], where: str) -> SemanticCacheConfig | None:
    raw = _mapping(cache, "semantic", where)
    if not raw:
        return None
    at = f"{where}.semantic"
    if "ttl_s" not in cache:
        raise ConfigError(f"{at} needs {where}.ttl_s: entries live as long as exact ones")
    threshold = raw.get("threshold", 0.95)
    if (
        not isinstance(threshold, int | float)
        or isinstance(threshold, bool)
        or not 0 < threshold <= 1
    ):
        raise ConfigError(f"{at}.threshold must be a number in (0, 1] (a cosine similarity)")
    max_entries = _optional_int(raw, "max_entries", at)
    return SemanticCacheConfig(
        embeddings_model=_required(raw, "embeddings_model", at),
        threshold=float(threshold),
        max_entries=1_000 if max_entries is None else max(1, max_entries),
    )


def _check_semantic(model: ModelConfig, models: Mapping[str, ModelConfig]) -> None:
    semantic = model.cache_semantic
    if semantic is None:
        return
    at = f"gateway.models[{model.name}].cache.semantic.embeddings_model"
    if semantic.embeddings_model not in models:
        raise ConfigError(
            f"{at}: unknown model {semantic.embeddings_model!r} (a gateway "
            "model that serves /v1/embeddings)"
        )
    if semantic.embeddings_model == model.name:
        raise ConfigError(f"{at}: a model cannot embed its own prompts; name an embeddings model")


def _key(entry: Mapping[str, Any], where: str) -> KeyConfig:
    secret = _required(entry, "key", where)
    key = parse_key(entry, refuse=ConfigError, where=where, source="config")
    # A config key's identity is its name, so its spend survives restarts and secret
    # rotation in the config file.
    return KeyConfig(secret, replace(key, id=f"config:{key.name}"))


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
        cache_read_per_mtok=(
            float(entry["cache_read_per_mtok"]) if "cache_read_per_mtok" in entry else None
        ),
        cache_write_per_mtok=(
            float(entry["cache_write_per_mtok"]) if "cache_write_per_mtok" in entry else None
        ),
    )


def _telemetry(data: Mapping[str, Any]) -> TelemetryConfig:
    raw = _mapping(data, "telemetry", "gateway")
    metrics = _mapping(raw, "metrics", "gateway.telemetry")
    return TelemetryConfig(
        otlp_endpoint=raw.get("otlp_endpoint") or None,
        otlp_headers={
            str(k): str(v) for k, v in _mapping(raw, "headers", "gateway.telemetry").items()
        },
        service_name=str(raw.get("service_name") or "lamina"),
        metrics_token=metrics.get("token") or None,
        metrics_public=bool(metrics.get("public", False)),
    )


def _log_bodies(data: Mapping[str, Any], models: Mapping[str, ModelConfig]) -> BodyLogConfig | None:
    if "log_bodies" not in data or data["log_bodies"] in (None, False):
        return None
    raw = _mapping(data, "log_bodies", "gateway") if data["log_bodies"] is not True else {}
    names = raw.get("models")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError("gateway.log_bodies.models must be a list of model names")
        unknown = sorted(set(names) - set(models))
        if unknown:
            raise ConfigError(f"gateway.log_bodies.models: unknown models {unknown}")
    redact = raw.get("redact") or []
    if not isinstance(redact, list) or not all(isinstance(r, str) and r for r in redact):
        raise ConfigError("gateway.log_bodies.redact must be a list of JSON paths or keys")
    max_bytes = _optional_int(raw, "max_bytes", "gateway.log_bodies")
    return BodyLogConfig(
        models=frozenset(names) if names is not None else None,
        max_bytes=16_384 if max_bytes is None else max_bytes,
        redact=tuple(redact),
    )
