"""Budgets in USD: checked before a call, debited after it.

Spend lives in SQL (`gateway_spend`), one row per key and budget period, and is only
ever changed by adding to it, so concurrent debits from many tasks or nodes never
lose one. This process mirrors it in memory so the check costs no query; the mirror
is loaded at start and moved by every debit made here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.gateway.errors import BudgetExceeded
from lamina.gateway.keys import VirtualKey
from lamina.gateway.tables import Tables


def period_of(budget_period: str, now: float) -> str:
    if budget_period == "total":
        return "total"
    day = datetime.fromtimestamp(now, UTC)
    return day.strftime("%Y-%m-%d") if budget_period == "day" else day.strftime("%Y-%m")


class SpendLedger:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock  # wall clock: periods are calendar days and months
        self._spent: dict[tuple[str, str], float] = {}

    async def load(self, engine: AsyncEngine, tables: Tables) -> None:
        async with engine.connect() as conn:
            rows = await conn.execute(select(tables.spend))
            for row in rows:
                self._spent[(row.key_id, row.period)] = float(row.spent_usd)

    def spent(self, key: VirtualKey) -> float:
        return self._spent.get((key.id, period_of(key.budget_period, self._clock())), 0.0)

    def check(self, key: VirtualKey) -> None:
        if key.budget_usd is None:
            return
        spent = self.spent(key)
        if spent >= key.budget_usd:
            raise BudgetExceeded(
                f"key {key.name!r} has spent ${spent:.4f} of its ${key.budget_usd:g} "
                f"{key.budget_period} budget")

    def debit(self, key: VirtualKey, cost_usd: float) -> tuple[str, str] | None:
        """Move the mirror; returns the (key id, period) row the writer must add to."""
        if cost_usd <= 0:
            return None
        row = (key.id, period_of(key.budget_period, self._clock()))
        self._spent[row] = self._spent.get(row, 0.0) + cost_usd
        return row
