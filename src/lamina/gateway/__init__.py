"""Lamina's AI gateway: one governed API (OpenAI's and Anthropic's) over many LLM
providers — keys, limits, budgets, caching, fallbacks, costs and usage."""

from __future__ import annotations

from lamina.gateway.function_keys import FunctionGrant
from lamina.gateway.gateway import Gateway
from lamina.gateway.service import Clocks

__all__ = ["Clocks", "FunctionGrant", "Gateway"]
