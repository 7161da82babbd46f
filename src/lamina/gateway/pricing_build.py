"""Regenerate `pricing.json` from the `genai-prices` data set.

    python -m lamina.gateway.pricing_build [OUTPUT]

Needs `genai-prices` importable (e.g. `pip install genai-prices` in a throwaway
venv); lamina itself only reads the JSON file this writes. Tiered prices keep their
base tier; time-conditional prices keep the latest one.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import fields, is_dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

_PRICE_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


def _clause(clause: Any) -> dict[str, Any]:
    name = type(clause).__name__
    if name == "ClauseOr":
        return {"or": [_clause(c) for c in clause.or_]}
    if name == "ClauseAnd":
        return {"and": [_clause(c) for c in clause.and_]}
    assert is_dataclass(clause)
    field = fields(clause)[0].name
    return {field: getattr(clause, field)}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return float(value)
    base = getattr(value, "base", None)  # TieredPrices: the price below the first tier
    return float(base) if base is not None else None


def _prices(model: Any) -> dict[str, float] | None:
    prices = model.prices
    if isinstance(prices, list):
        if not prices:
            return None
        prices = prices[-1].prices  # the latest conditional price
    out = {f: _number(getattr(prices, f, None)) for f in _PRICE_FIELDS}
    if out["input_mtok"] is None and out["output_mtok"] is None:
        return None
    return {k: v for k, v in out.items() if v is not None}


def build(version: str, providers: list[Any]) -> dict[str, Any]:
    out = []
    for provider in providers:
        models = []
        for model in provider.models:
            prices = _prices(model)
            if prices is not None:
                models.append({"id": model.id, "match": _clause(model.match), "prices": prices})
        out.append({
            "id": provider.id,
            "model_match": _clause(provider.model_match) if provider.model_match else None,
            "models": models,
        })
    return {"source": f"genai-prices {version}", "providers": out}


def main(argv: list[str]) -> None:
    data = importlib.import_module("genai_prices.data")
    version = str(getattr(importlib.import_module("genai_prices"), "__version__", "?"))
    target = Path(argv[0]) if argv else Path(__file__).with_name("pricing.json")
    target.write_bytes(orjson.dumps(build(version, data.providers)) + b"\n")


if __name__ == "__main__":
    main(sys.argv[1:])
