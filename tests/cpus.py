"""Whether this machine lets a test see CPU pinning (co-location's tests)."""

from __future__ import annotations

import os
import threading


def can_pin() -> bool:
    """Two CPUs, and a thread may narrow its mask to one (a policy may forbid it)."""
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        return False
    allowed: list[bool] = []

    def pin() -> None:  # on a thread of its own, which then ends
        try:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            allowed.append(True)
        except OSError:
            allowed.append(False)

    thread = threading.Thread(target=pin)
    thread.start()
    thread.join()
    return allowed == [True]
