"""Per-deployment health: a circuit breaker for each deployment.

    CLOSED ──N consecutive failures──▶ OPEN ──cooldown elapsed──▶ HALF_OPEN
      ▲                                 ▲                            │
      └──────────── probe succeeds ─────┼──────── probe fails ───────┘

While OPEN the router skips the deployment; HALF_OPEN lets exactly one request through
as a probe, and its outcome closes or re-opens the circuit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from lamina.gateway.config import CircuitConfig


class CircuitState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class IllegalTransition(RuntimeError):
    pass


# Which state may follow which; anything else is a bug in the breaker.
_TRANSITIONS = {
    CircuitState.CLOSED: {CircuitState.OPEN},
    # Only the passing of the cooldown may half-open a circuit.
    CircuitState.OPEN: {CircuitState.HALF_OPEN},
    # The probe's outcome decides.
    CircuitState.HALF_OPEN: {CircuitState.CLOSED, CircuitState.OPEN},
}


@dataclass(slots=True)
class Circuit:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def move(self, to: CircuitState) -> None:
        if to not in _TRANSITIONS[self.state]:
            raise IllegalTransition(f"circuit cannot go from {self.state.value} to {to.value}")
        self.state = to


class Health:
    def __init__(self, config: CircuitConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._circuits: dict[str, Circuit] = {}

    def state(self, deployment_id: str) -> CircuitState:
        return self._circuits.get(deployment_id, Circuit()).state

    def failures(self, deployment_id: str) -> int:
        return self._circuits.get(deployment_id, Circuit()).failures

    def allow(self, deployment_id: str) -> bool:
        circuit = self._circuits.get(deployment_id)
        if circuit is None or circuit.state is CircuitState.CLOSED:
            return True
        if circuit.state is CircuitState.OPEN:
            if self._clock() - circuit.opened_at < self._config.cooldown_s:
                return False
            circuit.move(CircuitState.HALF_OPEN)
        if circuit.probing:
            return False
        circuit.probing = True
        return True

    def succeeded(self, deployment_id: str) -> None:
        circuit = self._circuits.get(deployment_id)
        if circuit is None:
            return
        if circuit.state is CircuitState.HALF_OPEN:
            circuit.move(CircuitState.CLOSED)
        circuit.failures, circuit.probing = 0, False

    def failed(self, deployment_id: str) -> None:
        circuit = self._circuits.setdefault(deployment_id, Circuit())
        circuit.failures += 1
        circuit.probing = False
        if circuit.state is CircuitState.HALF_OPEN or (
            circuit.state is CircuitState.CLOSED and circuit.failures >= self._config.failures
        ):
            circuit.move(CircuitState.OPEN)
            circuit.opened_at = self._clock()
