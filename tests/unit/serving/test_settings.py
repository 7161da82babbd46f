"""LAMINA_WORKERS: how many serving processes `lamina serve` runs (docs/workers.md)."""

from __future__ import annotations

import os

import pytest

from lamina.settings import AUTO_WORKERS_MAX, Settings


def auto() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), AUTO_WORKERS_MAX))


@pytest.mark.parametrize("value", [None, "", "auto", "AUTO", " auto "])
def test_by_default_one_serving_process_per_cpu_at_most_four(value: str | None) -> None:
    env = {} if value is None else {"LAMINA_WORKERS": value}
    assert Settings.from_env(env).workers == auto()


@pytest.mark.parametrize("value", ["1", "2", "7"])
def test_a_count_is_taken_as_it_is(value: str) -> None:
    assert Settings.from_env({"LAMINA_WORKERS": value}).workers == int(value)


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_anything_else_is_refused_with_what_to_write(value: str) -> None:
    with pytest.raises(ValueError, match="LAMINA_WORKERS"):
        Settings.from_env({"LAMINA_WORKERS": value})


def test_settings_built_in_code_serve_from_one_process() -> None:
    assert Settings().workers == 1
