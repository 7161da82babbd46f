"""Learned pre-faulting: parked stems write, ahead of need, the pages a new
environment is known to write while it starts.

A forked environment shares the zygote's memory copy-on-write, and the first write to
each shared page is a page fault that copies it: ~3.9 µs a page on this class of VM.
Its start (leaving the zygote, the sandbox, the runtime's set-up, importing the
handler, the first invocation) writes ~650 such pages, ~2.5 ms of a ~10 ms start, and
nearly the same pages every time: the zygote's image and its allocator's state are the
same for every fork. So the pages the first environments of a zygote ended up
owning are learned (read from `/proc/<pid>/pagemap`: present and mapped by that
process alone), and each stem parked after that copies them in one
`madvise(MADV_POPULATE_WRITE)` per range before it waits (runtimes/python/sandbox.py,
`prefault`). The copies are made while nobody waits, and they are pages the
environment would have copied anyway, so its memory does not grow.

What the first environments owned after their first invocation includes what their
function's own init wrote. The set kept is what every learned environment owned
(an intersection), and a set larger than `MAX_PAGES` is not used: a stem must not
hand a small function the pages a big one wrote.
"""

from __future__ import annotations

import array
import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

log = logging.getLogger("lamina.prefault")

PAGE_SHIFT = 12  # 4 KiB pages: the offsets in pagemap are page numbers
PRESENT = 1 << 63
EXCLUSIVE = 1 << 56  # "page exclusively mapped" (Linux 4.2+)
OWNED = PRESENT | EXCLUSIVE
# A set beyond this (8 MiB) is a function's own init, not the start every one shares.
MAX_PAGES = 2048
# Environments learned from, at most, before the set is used or given up on.
LEARN_FROM = 3
# Mappings larger than this are a function's data, not the zygote's image: not read.
MAX_MAPPING = 256 << 20
# At most this many pages' entries are read (2 MiB of pagemap): a process that maps more
# (a function can map what it likes) is not learned from at all.
MAX_READ = 1 << 18


def owned_pages(pid: int) -> set[int]:
    """Page numbers of `pid`'s private writable memory that it alone maps: the
    zygote's pages it has copied, and those it wrote first. Empty if unreadable."""
    pages: set[int] = set()
    budget = MAX_READ
    try:
        with open(f"/proc/{pid}/maps", "rb") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for line in maps:
                fields = line.split(maxsplit=2)
                if fields[1][:2] != b"rw" or fields[1][3:4] != b"p":
                    continue
                low, high = (int(x, 16) for x in fields[0].split(b"-"))
                if high - low > MAX_MAPPING:
                    continue
                first, count = low >> PAGE_SHIFT, (high - low) >> PAGE_SHIFT
                budget -= count
                if budget < 0:
                    return set()
                pagemap.seek(first * 8)
                entries = array.array("Q")
                entries.frombytes(pagemap.read(count * 8))
                pages.update(first + i for i, e in enumerate(entries) if e & OWNED == OWNED)
    except (OSError, ValueError):
        return set()
    return pages


def as_ranges(pages: Iterable[int]) -> list[list[int]]:
    """Sorted page numbers as [address, length] byte ranges, neighbours joined."""
    ranges: list[list[int]] = []
    for page in sorted(pages):
        address = page << PAGE_SHIFT
        if ranges and ranges[-1][0] + ranges[-1][1] == address:
            ranges[-1][1] += 1 << PAGE_SHIFT
        else:
            ranges.append([address, 1 << PAGE_SHIFT])
    return ranges


class NewChild(Protocol):
    """A new environment's process handle: told `on_started(pid)` once its first
    invocation has ended (zygote.ForkedChild, sandbox.SandboxedChild)."""

    on_started: Callable[[int], None] | None


class PageLearner:
    """One zygote's learning: told the pid of each new environment once its first
    invocation has ended, until a set is in use (or `LEARN_FROM` tries found none
    small enough); `use(ranges)` hands a set to the zygote."""

    def __init__(
        self,
        use: Callable[[list[list[int]]], Awaitable[None]],
        read: Callable[[int], set[int]] = owned_pages,
    ) -> None:
        self._use = use
        self._read = read
        self._pages: set[int] | None = None
        self._learned = 0
        self._busy = False
        self.in_use = False
        self._task: asyncio.Task[None] | None = None

    @property
    def wants(self) -> bool:
        return not self.in_use and not self._busy and self._learned < LEARN_FROM

    def watch(self, child: NewChild) -> None:
        """Learn from `child` once its first invocation has ended, if still learning."""
        if self.wants:
            child.on_started = self.learn

    def learn(self, pid: int) -> None:
        """Read `pid`'s pages in a thread, off the event loop (~2 ms), and use the
        set if it is small enough now."""
        if not self.wants or pid <= 0:
            return
        self._busy = True
        self._task = asyncio.get_running_loop().create_task(self._learn(pid))

    async def _learn(self, pid: int) -> None:
        try:
            owned = await asyncio.to_thread(self._read, pid)
            if not owned:
                return
            self._learned += 1
            self._pages = owned if self._pages is None else self._pages & owned
            if len(self._pages) <= MAX_PAGES:
                await self._use(as_ranges(self._pages))
                self.in_use = True
                log.debug("stems now pre-fault %d pages", len(self._pages))
        except Exception as exc:  # a lost zygote: stems just start without
            log.debug("learning pages from %d: %s", pid, exc)
        finally:
            self._busy = False

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
