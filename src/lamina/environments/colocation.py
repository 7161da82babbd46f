"""At low load, the event loop and the environment it waits on share one CPU.

A warm invocation is a ping-pong: the server writes the event and sleeps in epoll, the
environment wakes, runs the handler, writes the answer and sleeps, the server wakes.
When the two sit on different CPUs every hand-over wakes the other CPU: an
inter-processor interrupt and, where idle CPUs sleep (a VM's halted vCPU, a core in a
deep C-state), tens of µs before it runs. Linux places a woken task on an idle CPU
rather than beside its waker, so on a quiet machine the pair is pulled apart on every
call. Measured on a 2-vCPU VM (no-op function, wrk at 1 connection, alternating
rounds): p50 0.57-0.61 ms with the loop thread and the environment on one CPU against
0.60-0.77 ms left to the scheduler; a ping-pong over a Unix socket took 58-70 µs on
one CPU and 220-230 µs across two.

So once the last `calm_needed` invocations each ran alone (`in_flight` 1), lamina pins
its event-loop thread to the CPU it is on and asks each environment it hands an event
to (a field of the runtime channel's event frame; the built-in Python runtime applies
it to itself while it waits for that event) to run there too. The first time a second
invocation is in flight the loop thread gets all its CPUs back, and environments are
told to spread with their next event — under load the work belongs on every CPU. Every
`pinned_span` invocations the loop is let go for the kernel to place it anew, in case
something else has made its CPU busy. Affinity is only ever a hint: any refusal (a
cpuset, a seccomp policy) turns co-location off.

A thread or process inherits the mask of the thread that starts it. The runtime pins
itself only while it waits for an event, so a handler and whatever it starts run free;
children the server spawns while pinned reset theirs (`spread_child`, a `preexec_fn`:
the mask lamina started with, so an administrator's own limit holds);
threads the loop thread starts while pinned (an executor's, a database connection's) get
every CPU back when the loop spreads.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable, Collection

ANY_CPU = -1
CALM_INVOCATIONS = 16
# Pinned, the loop cannot move off a CPU something else has grown busy on: every this
# many invocations it lets the kernel place it again (and pins where it then is).
PINNED_SPAN = 2000


def _our_threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return []


def _current_cpu() -> int:
    try:
        getcpu = ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (OSError, AttributeError):
        return ANY_CPU
    getcpu.restype = ctypes.c_int
    getcpu.argtypes = []
    return int(getcpu())


class CoLocation:
    def __init__(
        self,
        cpus: Collection[int] | None = None,
        *,
        calm_needed: int = CALM_INVOCATIONS,
        pinned_span: int = PINNED_SPAN,
        current_cpu: Callable[[], int] = _current_cpu,
        set_affinity: Callable[[int, Collection[int]], None] = os.sched_setaffinity,
        threads: Callable[[], Collection[int]] = _our_threads,
    ) -> None:
        self._cpus = frozenset(os.sched_getaffinity(0) if cpus is None else cpus)
        self._enabled = len(self._cpus) > 1
        self._calm_needed = calm_needed
        self._pinned_span = pinned_span
        self._pinned_for = 0  # invocations since the loop was pinned
        self._current_cpu = current_cpu
        self._set_affinity = set_affinity
        self._threads = threads
        self._calm = 0
        self.cpu = ANY_CPU  # the CPU the loop thread is pinned to

    def cpu_for(self, in_flight: int) -> int:
        """Where the environment about to get an event should run (ANY_CPU: anywhere),
        given how many invocations are in flight counting it; call on the loop thread."""
        if not self._enabled:
            return ANY_CPU
        if in_flight > 1:
            self._calm = 0
            if self.cpu != ANY_CPU:
                self._spread()
            return ANY_CPU
        if self.cpu != ANY_CPU:
            self._pinned_for += 1
            if self._pinned_for < self._pinned_span:
                return self.cpu
            self._calm = 0
            self._spread()  # the kernel places the loop again; calm pins it where it is
            return ANY_CPU
        self._calm += 1
        if self._calm >= self._calm_needed:
            self._pin()
        return self.cpu

    def spread_child(self) -> None:
        """In a child between fork and exec: the CPUs lamina started with, not the loop
        thread's one (a spawner's `preexec_fn`)."""
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, self._cpus)

    def close(self) -> None:
        """Give the loop thread all its CPUs back."""
        if self.cpu != ANY_CPU:
            self._spread()

    def _pin(self) -> None:
        cpu = self._current_cpu()
        if cpu not in self._cpus:
            self._enabled = False
            return
        try:
            self._set_affinity(0, (cpu,))
        except OSError:
            self._enabled = False
            return
        self.cpu = cpu
        self._pinned_for = 0

    def _spread(self) -> None:
        self.cpu = ANY_CPU
        try:
            self._set_affinity(0, self._cpus)
        except OSError:
            self._enabled = False
            return
        for tid in self._threads():  # any the loop started while pinned inherited its CPU
            with contextlib.suppress(OSError):  # gone since it was listed
                self._set_affinity(tid, self._cpus)
