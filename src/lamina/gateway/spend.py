"""Budgets in USD: checked before a call, debited after it.

Spend lives in SQL (`gateway_spend`), one row per key and budget period, and is only
ever changed by adding to it, so concurrent debits from many tasks or nodes never
lose one. This process mirrors it in memory so the check costs no query; the mirror
is loaded at start and moved by every debit made here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.gateway.errors import BudgetExceeded
from lamina.gateway.keys import VirtualKey
from lamina.gateway.tables import Tables


def period_of(budget_period: str, now: float) -> str:
    if budget_period == "total":
        return "total"
    # Asked two or three times per call: formatted once per UTC day (Unix days are
    # 86,400 s long) rather than through datetime and strftime (~5 us) each time.
    return _calendar_period(budget_period, int(now // 86400))


@lru_cache(maxsize=64)
def _calendar_period(budget_period: str, unix_day: int) -> str:
    day = datetime.fromtimestamp(unix_day * 86400, UTC)
    return day.strftime("%Y-%m-%d") if budget_period == "day" else day.strftime("%Y-%m")


class Hold:
    """An in-flight call's estimated cost, counted against the budget until settled."""

    def __init__(self, ledger: SpendLedger | None, key_id: str, usd: float) -> None:
        self._ledger, self._key_id, self._usd = ledger, key_id, usd

    def release(self) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger._reserved[self._key_id] -= self._usd


class SpendLedger:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock  # wall clock: periods are calendar days and months
        self._spent: dict[tuple[str, str], float] = {}
        # Estimated cost of calls in flight, per key: a burst of concurrent calls
        # cannot all pass the check on the same unspent budget.
        self._reserved: dict[str, float] = {}

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
        if spent + self._reserved.get(key.id, 0.0) >= key.budget_usd:
            raise BudgetExceeded(
                f"key {key.name!r} has spent ${spent:.4f} of its ${key.budget_usd:g} "
                f"{key.budget_period} budget (calls in flight included)"
            )

    def reserve(self, key: VirtualKey, estimate_usd: float) -> Hold:
        """Check the budget and hold the call's estimated cost until it settles."""
        self.check(key)
        if key.budget_usd is None or estimate_usd <= 0:
            return Hold(None, key.id, 0.0)
        self._reserved[key.id] = self._reserved.get(key.id, 0.0) + estimate_usd
        return Hold(self, key.id, estimate_usd)

    def debit(self, key: VirtualKey, cost_usd: float) -> tuple[str, str] | None:
        """Move the mirror; returns the (key id, period) row the writer must add to."""
        if cost_usd <= 0:
            return None
        row = (key.id, period_of(key.budget_period, self._clock()))
        self._spent[row] = self._spent.get(row, 0.0) + cost_usd
        return row
