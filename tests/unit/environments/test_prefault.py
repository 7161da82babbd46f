"""Learned pre-faulting (environments/prefault.py and the stem's side in
runtimes/python/sandbox.py): which pages count as a process's own, how they are
handed on, and when a learned set is used."""

from __future__ import annotations

import asyncio
import mmap
import os

import pytest

from lamina.environments import prefault
from lamina.environments.prefault import PageLearner, as_ranges, owned_pages
from lamina.runtimes.python import sandbox as runtime_sandbox

PAGE = 4096


def _in_child(step) -> int:  # type: ignore[no-untyped-def]
    """Run `step()` in a forked child; its return value (a small int) is the exit code."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(step())
        except BaseException:
            os._exit(255)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _shared_buffer(pages: int) -> tuple[mmap.mmap, int]:
    buffer = mmap.mmap(-1, pages * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(pages):
        buffer[i * PAGE] = i + 1  # present in the parent, so shared with a fork
    import ctypes

    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    return buffer, address


def test_a_fork_owns_the_pages_it_wrote_and_not_those_it_only_shares() -> None:
    buffer, address = _shared_buffer(8)
    first = address // PAGE

    def child() -> int:
        buffer[2 * PAGE] = 99  # copied on write: this child's own now
        owned = owned_pages(os.getpid())
        return int(first + 2 in owned) + 2 * int(first + 3 in owned)

    assert _in_child(child) == 1
    buffer.close()


def test_prefault_copies_the_pages_without_changing_them() -> None:
    buffer, address = _shared_buffer(8)
    first = address // PAGE

    def child() -> int:
        runtime_sandbox.prefault([[address + PAGE, 3 * PAGE]])
        owned = owned_pages(os.getpid())
        copied = all(first + i in owned for i in (1, 2, 3))
        untouched = first not in owned and first + 4 not in owned
        intact = all(buffer[i * PAGE] == i + 1 for i in range(8))
        return int(copied) + 2 * int(untouched) + 4 * int(intact)

    assert _in_child(child) == 7
    buffer.close()


def test_prefault_skips_what_is_not_mapped() -> None:
    buffer, address = _shared_buffer(2)

    def child() -> int:
        runtime_sandbox.prefault([[PAGE, PAGE], [address, PAGE]])  # page 1: never mapped
        return int(address // PAGE in owned_pages(os.getpid()))

    assert _in_child(child) == 1
    buffer.close()


def test_ranges_join_neighbouring_pages() -> None:
    assert as_ranges({5, 3, 4, 9}) == [[3 * PAGE, 3 * PAGE], [9 * PAGE, PAGE]]
    assert as_ranges(set()) == []


def test_an_unreadable_process_gives_no_pages() -> None:
    assert owned_pages(2**22 + 12345) == set()


def test_a_process_that_maps_too_much_is_not_learned_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert owned_pages(os.getpid())  # this test process owns pages
    monkeypatch.setattr(prefault, "MAX_READ", 16)
    assert owned_pages(os.getpid()) == set()


def _learner(sets: dict[int, set[int]]) -> tuple[PageLearner, list[list[list[int]]]]:
    used: list[list[list[int]]] = []

    async def use(ranges: list[list[int]]) -> None:
        used.append(ranges)

    return PageLearner(use, read=lambda pid: sets.get(pid, set())), used


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_the_first_small_enough_set_is_used_then_learning_stops() -> None:
    learner, used = _learner({1: {10, 11, 12}, 2: {10, 11}})
    assert learner.wants
    learner.learn(1)
    await _settle()
    assert used == [[[10 * PAGE, 3 * PAGE]]] and learner.in_use and not learner.wants
    learner.learn(2)  # ignored: pages copied ahead would show up as its own too
    await _settle()
    assert len(used) == 1


async def test_a_set_too_large_waits_for_what_the_next_environments_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prefault, "MAX_PAGES", 3)
    learner, used = _learner({1: {1, 2, 3, 4, 5}, 2: {2, 3, 4, 9}, 3: {3, 4, 7}})
    learner.learn(1)
    await _settle()
    assert used == [] and learner.wants
    learner.learn(2)  # {2, 3, 4}: small enough now
    await _settle()
    assert used == [[[2 * PAGE, 3 * PAGE]]]


async def test_learning_gives_up_after_a_few_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefault, "MAX_PAGES", 0)
    learner, used = _learner({pid: {1, 2} for pid in range(1, 10)})
    for pid in range(1, 10):
        learner.learn(pid)
        await _settle()
    assert used == [] and not learner.wants
    unread, _ = _learner({})
    unread.learn(5)  # nothing read (gone already): not counted
    await _settle()
    assert unread.wants
