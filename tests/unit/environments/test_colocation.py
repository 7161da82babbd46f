"""Co-location at low load: the policy, with the affinity calls recorded, not made."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from lamina.environments.colocation import ANY_CPU, CoLocation


class Affinity:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, frozenset[int]]] = []
        self.fail = fail

    def __call__(self, pid: int, cpus: Collection[int]) -> None:
        if self.fail:
            raise OSError(22, "Invalid argument")
        self.calls.append((pid, frozenset(cpus)))


def colocation(affinity: Affinity, cpus: Collection[int] = (0, 1), here: int = 1) -> CoLocation:
    return CoLocation(
        cpus, calm_needed=3, current_cpu=lambda: here, set_affinity=affinity, threads=lambda: []
    )


def test_calm_invocations_pin_the_loop_and_the_environment_to_its_cpu() -> None:
    affinity = Affinity()
    place = colocation(affinity)
    assert [place.cpu_for(1) for _ in range(2)] == [ANY_CPU, ANY_CPU]
    assert affinity.calls == []
    assert place.cpu_for(1) == 1  # the third alone: pinned where the loop runs
    assert affinity.calls == [(0, frozenset({1}))]  # 0: the calling (loop) thread
    assert place.cpu_for(1) == 1
    assert len(affinity.calls) == 1  # pinned once, not per invocation


def test_a_second_invocation_in_flight_spreads_at_once_and_calm_starts_over() -> None:
    affinity = Affinity()
    place = colocation(affinity)
    for _ in range(3):
        place.cpu_for(1)
    assert place.cpu_for(2) == ANY_CPU
    assert affinity.calls[-1] == (0, frozenset({0, 1}))
    assert [place.cpu_for(1) for _ in range(3)] == [ANY_CPU, ANY_CPU, 1]
    place.cpu_for(1)
    assert place.cpu_for(3) == ANY_CPU


def test_close_gives_the_loop_its_cpus_back() -> None:
    affinity = Affinity()
    place = colocation(affinity)
    for _ in range(3):
        place.cpu_for(1)
    place.close()
    assert affinity.calls[-1] == (0, frozenset({0, 1}))
    assert place.cpu == ANY_CPU


@pytest.mark.parametrize("cpus", [(0,), ()])
def test_one_cpu_means_nothing_to_share(cpus: tuple[int, ...]) -> None:
    affinity = Affinity()
    place = colocation(affinity, cpus=cpus, here=0)
    assert [place.cpu_for(1) for _ in range(5)] == [ANY_CPU] * 5
    assert affinity.calls == []


def test_a_refused_pin_turns_co_location_off() -> None:
    place = colocation(Affinity(fail=True))
    assert [place.cpu_for(1) for _ in range(5)] == [ANY_CPU] * 5


def test_a_cpu_outside_the_allowed_set_turns_co_location_off() -> None:
    affinity = Affinity()
    place = colocation(affinity, cpus=(0, 1), here=7)
    assert [place.cpu_for(1) for _ in range(5)] == [ANY_CPU] * 5
    assert affinity.calls == []


def test_spreading_gives_threads_started_while_pinned_every_cpu_back() -> None:
    affinity = Affinity()
    place = CoLocation(
        (0, 1), calm_needed=1, current_cpu=lambda: 0, set_affinity=affinity,
        threads=lambda: [101, 102],
    )  # fmt: skip
    place.cpu_for(1)
    place.cpu_for(2)
    everywhere = frozenset({0, 1})
    assert affinity.calls == [(0, frozenset({0})), (0, everywhere), (101, everywhere), (102, everywhere)]


def test_the_kernel_places_the_loop_again_every_so_often() -> None:
    affinity = Affinity()
    cpus = iter([1, 0])
    place = CoLocation(
        (0, 1), calm_needed=2, pinned_span=3, current_cpu=lambda: next(cpus),
        set_affinity=affinity, threads=lambda: [],
    )  # fmt: skip
    assert [place.cpu_for(1) for _ in range(2)] == [ANY_CPU, 1]
    assert [place.cpu_for(1) for _ in range(3)] == [1, 1, ANY_CPU]  # let go after 3
    assert [place.cpu_for(1) for _ in range(2)] == [ANY_CPU, 0]  # pinned where it is now
    assert affinity.calls == [(0, frozenset({1})), (0, frozenset({0, 1})), (0, frozenset({0}))]
