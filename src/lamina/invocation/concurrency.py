"""Concurrency accounting, decided before an environment is taken.

As in Lambda: the account has a limit (1,000 by default); a function with reserved
concurrency may run at most that many at once and its reservation is taken out of
the pool the other functions share; at least 100 always stay unreserved.
"""

from __future__ import annotations

from lamina.errors import InvalidParameterValue, TooManyRequests

UNRESERVED_MIN = 100


def _throttled(reason: str) -> TooManyRequests:
    return TooManyRequests("Rate Exceeded.", fields={"Reason": reason, "Type": "User"})


class Concurrency:
    def __init__(self, account_limit: int) -> None:
        self.account_limit = account_limit
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

    def running(self, function: str) -> int:
        return self._in_flight.get(function, 0)
