"""The environment lifecycle as an explicit state machine.

    STARTING ──first /next──▶ IDLE ◀──response/error── BUSY
        │                      │  └──────invoke──────────▲
        └──init error/exit──▶ STOPPED ◀──stop/timeout/exit (any state)

An illegal transition is a bug in lamina, never a user error: it raises.
"""

from __future__ import annotations

import enum


class EnvState(enum.Enum):
    STARTING = "starting"  # process launched, function init running
    IDLE = "idle"  # waiting in /next, ready for an invocation
    BUSY = "busy"  # an invocation is in flight
    STOPPED = "stopped"  # process gone or being killed; never reused


_ALLOWED: dict[EnvState, frozenset[EnvState]] = {
    # A cold start hands its first invocation over before init finishes, so STARTING
    # may go straight to BUSY.
    EnvState.STARTING: frozenset({EnvState.IDLE, EnvState.BUSY, EnvState.STOPPED}),
    EnvState.IDLE: frozenset({EnvState.BUSY, EnvState.STOPPED}),
    EnvState.BUSY: frozenset({EnvState.IDLE, EnvState.STOPPED}),
    EnvState.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(current: EnvState, target: EnvState) -> None:
    if target not in _ALLOWED[current]:
        raise IllegalTransition(f"environment cannot go from {current.value} to {target.value}")
