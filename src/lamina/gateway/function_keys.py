"""Keys scoped to one function: a function whose configuration enables the gateway
gets OPENAI_* / ANTHROPIC_* variables pointing at lamina with a key of its own, so
`openai.OpenAI()` inside it just works, within the function's own limits and budget,
and its usage is attributed to it (`group_by=function`).

The secret is derived (HMAC of the function name under the gateway's signing key),
never stored: the same function gets the same key after a restart, and rotating
lamina's root credentials rotates every function key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from lamina.gateway.keys import VirtualKey

FUNCTION_KEY_PREFIX = "function:"


@dataclass(frozen=True, slots=True)
class FunctionGrant:
    function: str
    models: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: str = "month"


def function_secret(signing_key: bytes, function: str) -> str:
    digest = hmac.new(signing_key, f"lamina-gateway-function:{function}".encode(),
                      hashlib.sha256).hexdigest()
    return f"lk-fn-{digest}"


def function_key(grant: FunctionGrant) -> VirtualKey:
    return VirtualKey(id=f"{FUNCTION_KEY_PREFIX}{grant.function}", name=grant.function,
                      models=grant.models, rpm=grant.rpm, tpm=grant.tpm,
                      max_parallel=grant.max_parallel, budget_usd=grant.budget_usd,
                      budget_period=grant.budget_period, source="function",
                      metadata={"function": grant.function})


def function_environment(endpoint: str, secret: str) -> dict[str, str]:
    """The variables the openai and anthropic SDKs read, pointing at lamina."""
    base = endpoint.rstrip("/")
    return {"OPENAI_BASE_URL": f"{base}/v1", "OPENAI_API_KEY": secret,
            "ANTHROPIC_BASE_URL": base, "ANTHROPIC_API_KEY": secret}


GATEWAY_SWITCH = "LAMINA_AI_GATEWAY"


def grant_from_environment(function: str, variables: Mapping[str, str]) -> FunctionGrant | None:
    """A function opts in with `LAMINA_AI_GATEWAY=on` among its environment variables;
    `LAMINA_AI_GATEWAY_MODELS` (comma-separated), `..._RPM`, `..._TPM` and
    `..._BUDGET_USD` narrow its own key. None when it did not opt in."""
    if variables.get(GATEWAY_SWITCH, "").strip().lower() not in ("1", "on", "true", "yes"):
        return None

    def number(suffix: str) -> str | None:
        raw = variables.get(f"{GATEWAY_SWITCH}_{suffix}", "").strip()
        return raw or None

    models = number("MODELS")
    rpm, tpm, budget = number("RPM"), number("TPM"), number("BUDGET_USD")
    try:
        return FunctionGrant(
            function,
            models=frozenset(m.strip() for m in models.split(",") if m.strip()) if models else None,
            rpm=int(rpm) if rpm else None,
            tpm=int(tpm) if tpm else None,
            budget_usd=float(budget) if budget else None,
        )
    except ValueError:
        return FunctionGrant(function)  # a malformed limit: the function still gets its key
