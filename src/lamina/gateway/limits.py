"""Rate limits: requests and tokens per minute and requests in flight, per scope
(a key, a model). Over a limit → `RateLimited` with the seconds until it clears.

A sliding log per scope: one entry per admitted request holding its token count, so
RPM and TPM are exact over the last 60 s. Tokens are estimated on admission and
corrected with the real usage afterwards (`Ticket.settle`). In memory, per process:
a minute-window limit does not need to survive a restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lamina.gateway.errors import RateLimited

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


@dataclass(slots=True)
class _Entry:
    at: float
    tokens: int


@dataclass(slots=True)
class _Scope:
    log: deque[_Entry] = field(default_factory=deque)
    tokens: int = 0
    in_flight: int = 0


class Ticket:
    """One admitted request: settle its real token count, then release it."""

    def __init__(self, holds: list[tuple[_Scope, _Entry]]) -> None:
        self._holds = holds
        self._released = False

    def settle(self, tokens: int) -> None:
        for scope, entry in self._holds:
            scope.tokens += tokens - entry.tokens
            entry.tokens = tokens

    def release(self) -> None:
        if not self._released:
            self._released = True
            for scope, _ in self._holds:
                scope.in_flight -= 1


class Limiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock  # monotonic
        self._scopes: dict[str, _Scope] = {}

    def _scope(self, name: str, now: float) -> _Scope:
        scope = self._scopes.get(name)
        if scope is None:
            scope = self._scopes[name] = _Scope()
        log = scope.log
        while log and now - log[0].at >= WINDOW_S:
            scope.tokens -= log.popleft().tokens
        return scope

    def _check(self, name: str, scope: _Scope, limits: Limits, tokens: int, now: float) -> None:
        if limits.max_parallel is not None and scope.in_flight >= limits.max_parallel:
            raise RateLimited(f"{name}: {limits.max_parallel} requests already in flight",
                              retry_after_s=1.0)
        if limits.rpm is not None and len(scope.log) >= limits.rpm:
            wait = scope.log[-limits.rpm].at + WINDOW_S - now if limits.rpm else WINDOW_S
            raise RateLimited(f"{name}: over {limits.rpm} requests per minute",
                              retry_after_s=wait)
        if limits.tpm is not None and scope.tokens + tokens > limits.tpm:
            # Wait until enough of the window's tokens have aged out.
            excess, wait = scope.tokens + tokens - limits.tpm, WINDOW_S
            for entry in scope.log:
                excess -= entry.tokens
                if excess <= 0:
                    wait = entry.at + WINDOW_S - now
                    break
            raise RateLimited(f"{name}: over {limits.tpm} tokens per minute",
                              retry_after_s=wait)

    def admit(self, scopes: list[tuple[str, str, Limits]], tokens: int) -> Ticket:
        """Admit a request into every scope (id, label for messages, limits), or into
        none (raises `RateLimited`)."""
        now = self._clock()
        # On every request: no Limits() built to compare with, no scope for no limits.
        active = [(label, self._scope(scope_id, now), limits)
                  for scope_id, label, limits in scopes
                  if limits.rpm is not None or limits.tpm is not None
                  or limits.max_parallel is not None]
        for label, scope, limits in active:
            self._check(label, scope, limits, tokens, now)
        holds = []
        for _, scope, _ in active:
            entry = _Entry(now, tokens)
            scope.log.append(entry)
            scope.tokens += tokens
            scope.in_flight += 1
            holds.append((scope, entry))
        return Ticket(holds)


def estimate_tokens(body_size: int) -> int:
    """A cheap upper-ish estimate: ~4 bytes of JSON per token."""
    return max(1, body_size // 4)
