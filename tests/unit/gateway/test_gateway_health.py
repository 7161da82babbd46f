from __future__ import annotations

import pytest

from lamina.gateway.config import CircuitConfig
from lamina.gateway.health import Circuit, CircuitState, Health, IllegalTransition


def test_circuit_opens_half_opens_and_closes() -> None:
    now = [0.0]
    health = Health(CircuitConfig(failures=2, cooldown_s=10), lambda: now[0])
    health.failed("d")
    assert health.allow("d")
    health.failed("d")
    assert health.state("d") is CircuitState.OPEN and not health.allow("d")
    now[0] = 10
    assert health.allow("d")  # the probe
    assert not health.allow("d")  # only one probe at a time
    health.failed("d")
    assert health.state("d") is CircuitState.OPEN
    now[0] = 20
    assert health.allow("d")
    health.succeeded("d")
    assert health.state("d") is CircuitState.CLOSED and health.allow("d")


def test_illegal_transition() -> None:
    with pytest.raises(IllegalTransition):
        Circuit().move(CircuitState.HALF_OPEN)
