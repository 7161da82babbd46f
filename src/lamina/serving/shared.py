"""Counters every serving process of a node maps, so node-wide limits hold across them.

The file is a header and one row per serving process (slot 0 is the primary's):

    word 0  magic              row r starts at word 8 + 8r:
    word 1  layout version         +0  pid
    word 2  processes (slots)      +1  unreserved invocations in flight
    word 3  generation             +2  committed memory, MB (sum of MemorySize)
    words 4-7 spare                +3..7 spare

then, per process, a column of IDLE_BUCKETS words: its idle environments per bucket of
code keys (crc32 of the key). A process about to start the first environment of a
function asks the others first: one with an idle environment of it takes the call
instead (serving/placement.py). A hint only — buckets are shared by keys and an idle
environment may be taken meanwhile — that at worst costs a forward.

Every field is an aligned int64 with exactly one writer — a row's fields the process
owning that slot (or the primary clearing the row of a dead worker), the header the
primary — and on x86-64 an aligned 8-byte load or store is atomic, so readers never see
a torn value and no lock is needed to read. Rows are one 64-byte cache line each so that
processes publishing on every invocation do not bounce one line between their CPUs.
`locked()` exists for check-then-publish decisions that must be exact across processes.

Each process opens the file itself (`create` or `attach`): flock locks belong to the open
file description, which a forked child shares with its parent, so a worker forked after
`create` must still `attach` rather than reuse the primary's object.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

MAGIC = 0x4C414D494E415343  # "LAMINASC"
VERSION = 2
WORD = 8
HEADER_WORDS = 8
ROW_WORDS = 8  # 64 bytes: one cache line per process
IDLE_BUCKETS = 1024

_MAGIC, _VERSION, _PROCESSES, _GENERATION = 0, 1, 2, 3
_PID, _IN_FLIGHT, _MEMORY_MB = 0, 1, 2


def _size(processes: int) -> int:
    return (HEADER_WORDS + (ROW_WORDS + IDLE_BUCKETS) * processes) * WORD


def idle_bucket(code_key: str) -> int:
    """The idle-hint bucket of a function revision (the same in every process, unlike hash())."""
    return zlib.crc32(code_key.encode()) % IDLE_BUCKETS


class SharedCounters:
    """One process's view of the node's shared counters, publishing into its own slot."""

    def __init__(self, fd: int, slot: int) -> None:
        """Use `create` or `attach`; this takes ownership of `fd`."""
        self._fd = fd
        self._map = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._words = memoryview(self._map).cast("q")
        self.slot = slot
        self.processes = 0
        self._row = HEADER_WORDS + ROW_WORDS * slot
        self._idle = 0  # where this process's idle column starts, once `processes` is known
        # Taking and dropping a lock runs an atomic read-modify-write, a full fence on
        # x86-64: see publish_in_flight.
        self._fence = threading.Lock()

    @classmethod
    def create(cls, path: Path, processes: int) -> SharedCounters:
        """A fresh, zeroed file for `processes` serving processes; the caller owns slot 0."""
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        # A new inode rather than truncating in place: a process of an earlier run that
        # still maps the old file would take SIGBUS on a truncated mapping.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, _size(processes))
            counters = cls(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        words = counters._words
        words[_VERSION] = VERSION
        words[_PROCESSES] = processes
        words[_MAGIC] = MAGIC  # last: a worker attaching early finds no magic, not half a header
        counters._known(processes)
        return counters

    @classmethod
    def attach(cls, path: Path, slot: int) -> SharedCounters:
        """Map the primary's file and publish into `slot` (a worker's, 1 and up)."""
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < _size(0):
                raise ValueError(f"{path} is not a lamina shared-counters file (too short)")
            counters = cls(fd, slot)
        except BaseException:
            os.close(fd)
            raise
        try:
            words = counters._words
            if words[_MAGIC] != MAGIC:
                raise ValueError(f"{path} is not a lamina shared-counters file (bad magic)")
            if words[_VERSION] != VERSION:
                raise ValueError(f"{path} has layout version {words[_VERSION]}, not {VERSION}")
            processes = words[_PROCESSES]
            if size != _size(processes):
                raise ValueError(f"{path} is {size} bytes, not {_size(processes)}")
            if not 0 <= slot < processes:
                raise ValueError(f"slot {slot} is out of range: {path} has {processes} slots")
        except BaseException:
            counters.close()
            raise
        counters._known(processes)
        return counters

    def _known(self, processes: int) -> None:
        self.processes = processes
        self._idle = self._idle_of(self.slot)

    def _idle_of(self, slot: int) -> int:
        return HEADER_WORDS + ROW_WORDS * self.processes + IDLE_BUCKETS * slot

    def close(self) -> None:
        """Unmap and close; safe to call twice. The file and its counts stay."""
        if self._fd < 0:
            return
        self._words.release()  # an mmap with an exported buffer refuses to close
        self._map.close()
        os.close(self._fd)
        self._fd = -1

    def claim(self, pid: int) -> None:
        self._words[self._row + _PID] = pid

    def pid(self, slot: int) -> int:
        return self._words[self._row_of(slot) + _PID]

    def generation(self) -> int:
        return self._words[_GENERATION]

    def bump(self) -> int:
        """Advance the generation (the primary only: one writer per field)."""
        generation = self._words[_GENERATION] + 1
        self._words[_GENERATION] = generation
        return generation

    def publish_in_flight(self, n: int) -> None:
        """Publish this process's unreserved invocations in flight.

        Returns only once the store is visible to every other process: x86-64 may
        otherwise let this process's next loads pass the store, and two processes
        racing for the last slot could each miss the other's count."""
        self._words[self._row + _IN_FLIGHT] = n
        with self._fence:
            pass

    def others_in_flight(self) -> int:
        return self._sum_others(_IN_FLIGHT)

    def publish_memory_mb(self, mb: int) -> None:
        self._words[self._row + _MEMORY_MB] = mb

    def others_memory_mb(self) -> int:
        return self._sum_others(_MEMORY_MB)

    def clear(self, slot: int) -> None:
        """Zero a dead worker's row so its counts stop holding capacity (the primary)."""
        row = self._row_of(slot)
        self._words[row : row + ROW_WORDS] = memoryview(bytes(ROW_WORDS * WORD)).cast("q")
        idle = self._idle_of(slot)
        self._words[idle : idle + IDLE_BUCKETS] = memoryview(bytes(IDLE_BUCKETS * WORD)).cast("q")

    def add_idle(self, bucket: int, delta: int) -> None:
        """This process has `delta` more idle environments in `bucket` (see idle_bucket)."""
        self._words[self._idle + bucket] += delta

    def idle_elsewhere(self, bucket: int) -> int | None:
        """Another process with an idle environment in `bucket`, if any (its slot)."""
        words = self._words
        for slot in range(self.processes):
            if slot != self.slot and words[self._idle_of(slot) + bucket] > 0:
                return slot
        return None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the node-wide lock, for a check-then-publish no other process interleaves."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _row_of(self, slot: int) -> int:
        if not 0 <= slot < self.processes:
            raise ValueError(f"slot {slot} is out of range: there are {self.processes} slots")
        return HEADER_WORDS + ROW_WORDS * slot

    def _sum_others(self, field: int) -> int:
        start = HEADER_WORDS + field
        end = HEADER_WORDS + ROW_WORDS * self.processes
        # One strided read of the column, less this process's own (which it wrote).
        return sum(self._words[start:end:ROW_WORDS]) - self._words[self._row + field]
