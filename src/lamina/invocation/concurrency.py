"""Concurrency accounting, decided before an environment is taken.

As in Lambda: the account has a limit (1,000 by default); a function with reserved
concurrency may run at most that many at once and its reservation is taken out of
the pool the other functions share; at least 100 always stay unreserved.

When the node serves from several processes, the unreserved pool is the account's, not
one process's: given `SharedCounters`, each process publishes its unreserved count and
admits against the sum. Reserved functions are served by the primary alone, so their
counts stay local.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamina.errors import InvalidParameterValue, TooManyRequests

if TYPE_CHECKING:
    from lamina.serving.shared import SharedCounters

UNRESERVED_MIN = 100


def _throttled(reason: str) -> TooManyRequests:
    return TooManyRequests("Rate Exceeded.", fields={"Reason": reason, "Type": "User"})


class Concurrency:
    def __init__(self, account_limit: int, shared: SharedCounters | None = None) -> None:
        self.account_limit = account_limit
        self._shared = shared
        self._reserved: dict[str, int] = {}
        self._in_flight: dict[str, int] = {}
        self._unreserved_in_flight = 0
        self.in_flight = 0  # running invocations of every function

    @property
    def unreserved_limit(self) -> int:
        return self.account_limit - sum(self._reserved.values())

    def reserve(self, function: str, count: int) -> None:
        others = sum(v for k, v in self._reserved.items() if k != function)
        if self.account_limit - others - count < UNRESERVED_MIN:
            raise InvalidParameterValue(
                f"Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{UNRESERVED_MIN}]."
            )
        self._reserved[function] = count

    def unreserve(self, function: str) -> None:
        self._reserved.pop(function, None)

    def reserved(self, function: str) -> int | None:
        return self._reserved.get(function)

    def acquire(self, function: str) -> bool:
        """Count one more running invocation, or raise 429 TooManyRequestsException.

        Returns whether it was counted in the shared (unreserved) pool; pass that back
        to `release`, since the reservation may change while it runs."""
        running = self._in_flight.get(function, 0)
        reserved = self._reserved.get(function)
        if reserved is not None:
            if running >= reserved:
                raise _throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
        elif self._shared is not None:
            self._take_shared(self._shared, self.unreserved_limit)
        elif self._unreserved_in_flight >= self.unreserved_limit:
            raise _throttled("ConcurrentInvocationLimitExceeded")
        else:
            self._unreserved_in_flight += 1
        self._in_flight[function] = running + 1
        self.in_flight += 1
        return reserved is None

    def release(self, function: str, unreserved: bool) -> None:
        self.in_flight -= 1
        running = self._in_flight.get(function, 0) - 1
        if running <= 0:
            self._in_flight.pop(function, None)
        else:
            self._in_flight[function] = running
        if unreserved:
            self._unreserved_in_flight = max(0, self._unreserved_in_flight - 1)
            if self._shared is not None:
                self._shared.publish_in_flight(self._unreserved_in_flight)

    def _take_shared(self, shared: SharedCounters, limit: int) -> None:
        """Count one more in the account-wide unreserved pool, or raise 429.

        The count is published before the others are read, so of any two processes
        racing for the last slot at least one sees the other: whoever sees a total
        within the limit may go ahead without the lock, and every admission is safe.
        Over the limit, the decision is retaken under the node lock with this count
        still published, so that contenders settle in turn and exactly as many are
        admitted as there are slots, instead of each refusing for seeing the other."""
        own = self._unreserved_in_flight + 1
        shared.publish_in_flight(own)
        if own + shared.others_in_flight() > limit:
            with shared.locked():
                if own + shared.others_in_flight() > limit:
                    shared.publish_in_flight(own - 1)
                    raise _throttled("ConcurrentInvocationLimitExceeded")
        self._unreserved_in_flight = own

    @property
    def node_in_flight(self) -> int:
        """Running invocations on the whole node: this process's, and the other serving
        processes' (their unreserved ones: reserved functions run in the primary alone)."""
        if self._shared is None:
            return self.in_flight
        return self.in_flight + self._shared.others_in_flight()

    def running(self, function: str) -> int:
        return self._in_flight.get(function, 0)
