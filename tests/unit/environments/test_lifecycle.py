"""The environment state machine: every pair of states, allowed or not."""

from __future__ import annotations

import itertools

import pytest

from lamina.environments.lifecycle import EnvState, IllegalTransition, check_transition

S = EnvState
Pair = tuple[EnvState, EnvState]
ALLOWED: set[Pair] = {
    (S.STARTING, S.IDLE),  # first /next: init finished, nothing queued
    (S.STARTING, S.BUSY),  # a cold start's invocation is handed over during init
    (S.STARTING, S.STOPPED),  # init error, crash, or stop
    (S.IDLE, S.BUSY),
    (S.IDLE, S.STOPPED),
    (S.BUSY, S.IDLE),
    (S.BUSY, S.STOPPED),
}
ALL_PAIRS: list[Pair] = list(itertools.product(EnvState, EnvState))


def _id(pair: Pair) -> str:
    return f"{pair[0].value}->{pair[1].value}"


ALLOWED_PAIRS = sorted(ALLOWED, key=_id)
ILLEGAL_PAIRS = sorted(set(ALL_PAIRS) - ALLOWED, key=_id)


@pytest.mark.parametrize("pair", ALLOWED_PAIRS, ids=[_id(p) for p in ALLOWED_PAIRS])
def test_allowed_transitions_pass(pair: Pair) -> None:
    check_transition(*pair)


@pytest.mark.parametrize("pair", ILLEGAL_PAIRS, ids=[_id(p) for p in ILLEGAL_PAIRS])
def test_illegal_transitions_raise(pair: Pair) -> None:
    current, target = pair
    with pytest.raises(IllegalTransition, match=f"from {current.value} to {target.value}"):
        check_transition(current, target)


def test_stopped_is_final_and_nothing_returns_to_starting() -> None:
    for state in EnvState:
        with pytest.raises(IllegalTransition):
            check_transition(S.STOPPED, state)
        with pytest.raises(IllegalTransition):
            check_transition(state, S.STARTING)


def test_illegal_transition_is_a_lamina_bug_not_a_client_error() -> None:
    from lamina.errors import LaminaError

    assert issubclass(IllegalTransition, RuntimeError)
    assert not issubclass(IllegalTransition, LaminaError)
