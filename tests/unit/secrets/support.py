"""Shared test helpers for the secrets engine (no __init__.py here on purpose: pytest
would import this folder as a top-level `secrets`, shadowing the standard library)."""

from __future__ import annotations

START = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance_days(self, days: float) -> None:
        self.now += days * 86_400
