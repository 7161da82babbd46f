from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lamina.gateway.errors import BudgetExceeded
from lamina.gateway.keys import VirtualKey
from lamina.gateway.spend import SpendLedger, period_of

NOV_27 = datetime(2026, 11, 27, 12, tzinfo=UTC).timestamp()


def test_periods() -> None:
    assert period_of("total", NOV_27) == "total"
    assert period_of("day", NOV_27) == "2026-11-27"
    assert period_of("month", NOV_27) == "2026-11"


def test_periods_turn_at_utc_midnight() -> None:
    # Formatted once per UTC day and remembered: the boundaries must stay exact.
    new_year = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert period_of("day", new_year - 0.001) == "2026-12-31"
    assert period_of("month", new_year - 0.001) == "2026-12"
    assert period_of("day", new_year) == "2027-01-01"
    assert period_of("month", new_year) == "2027-01"
    leap = datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()
    assert period_of("day", leap) == "2028-02-29"
    assert period_of("day", leap + 1) == "2028-03-01"


def test_holds_count_until_released_and_debits_stay() -> None:
    ledger = SpendLedger(lambda: NOV_27)
    key = VirtualKey(id="k", name="k", budget_usd=1.0, budget_period="day")
    hold = ledger.reserve(key, 0.6)
    ledger.reserve(key, 0.6)  # allowed: the check does not count this call's own estimate
    with pytest.raises(BudgetExceeded):
        ledger.reserve(key, 0.1)
    hold.release()
    hold.release()  # idempotent
    assert ledger.debit(key, 0.3) == ("k", "2026-11-27")
    assert ledger.spent(key) == pytest.approx(0.3)


def test_unbudgeted_keys_hold_nothing() -> None:
    ledger = SpendLedger(lambda: NOV_27)
    key = VirtualKey(id="k", name="k")
    ledger.reserve(key, 100.0)
    ledger.check(key)
    assert ledger.debit(key, 0.0) is None
