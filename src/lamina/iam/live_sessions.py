"""The role sessions an IAM directory holds in memory, soonest to expire first.

Every environment start issues a session that lives 12 h, so a busy server holds many:
pruning reads only what has expired, from a heap of expiries, where a walk over all of
them on each issue grew without bound (~100 µs per issue with none, ~185 µs with
2,000).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from lamina.iam.model import RoleSession


class LiveSessions:
    def __init__(self, sessions: Iterable[RoleSession] = ()) -> None:
        self._by_key = {s.access_key_id: s for s in sessions}
        # (expiry, access key id); an entry whose session was removed stays until popped.
        self._expiries = [(s.expires, s.access_key_id) for s in self._by_key.values()]
        heapq.heapify(self._expiries)

    def __iter__(self) -> Iterator[RoleSession]:
        return iter(self._by_key.values())

    def add(self, session: RoleSession) -> None:
        self._by_key[session.access_key_id] = session
        heapq.heappush(self._expiries, (session.expires, session.access_key_id))

    def of_role(self, name: str) -> list[RoleSession]:
        return [s for s in self._by_key.values() if s.role_name.lower() == name.lower()]

    def remove(self, access_key_id: str) -> None:
        del self._by_key[access_key_id]

    def expire(self, now: float) -> list[str]:
        """Drop the sessions expired by `now`; their access key ids."""
        gone: list[str] = []
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, key_id = heapq.heappop(expiries)
            session = self._by_key.get(key_id)
            if session is not None and session.expires <= now:  # not removed before
                del self._by_key[key_id]
                gone.append(key_id)
        return gone
