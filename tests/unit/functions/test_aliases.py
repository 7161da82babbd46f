"""route(): which configuration an invocation runs, for $LATEST, versions and aliases."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from tests.unit.functions.support import Platform, handler_zip, new_config

from lamina.errors import InvalidParameterValue, ResourceNotFound
from lamina.functions.aliases import route
from lamina.functions.model import LATEST
from lamina.functions.package import inspect
from lamina.functions.registry import FunctionRegistry


@pytest.fixture
async def three_versions(memory_platform: Platform) -> FunctionRegistry:
    """fn with versions 1..3 (different code each) and $LATEST = version 3's code."""
    registry = memory_platform.registry
    await registry.create(new_config(), inspect(handler_zip("v1")), publish=True)
    for marker in ("v2", "v3"):
        await registry.update_code("fn", inspect(handler_zip(marker)), True, None)
    return registry


def draws(*points: float) -> Callable[[], float]:
    sequence: Iterator[float] = iter(points)
    return lambda: next(sequence)


def never_drawn() -> float:
    raise AssertionError("only a weighted alias draws")


async def test_no_qualifier_and_latest_run_latest(three_versions: FunctionRegistry) -> None:
    latest = three_versions.get("fn").latest
    assert route(three_versions, "fn", None, never_drawn) is latest
    assert route(three_versions, "fn", LATEST, never_drawn) is latest


async def test_a_version_runs_that_version(three_versions: FunctionRegistry) -> None:
    for version in ("1", "2", "3"):
        assert route(three_versions, "fn", version, never_drawn).version == version


async def test_a_plain_alias_runs_its_version(
    three_versions: FunctionRegistry, memory_platform: Platform
) -> None:
    await memory_platform.settings.create_alias("fn", "live", "2", "", {})
    chosen = [route(three_versions, "fn", "live").version for _ in range(20)]
    assert chosen == ["2"] * 20


async def test_an_alias_to_latest_runs_latest(
    three_versions: FunctionRegistry, memory_platform: Platform
) -> None:
    await memory_platform.settings.create_alias("fn", "dev", LATEST, "", {})
    assert route(three_versions, "fn", "dev") is three_versions.get("fn").latest


@pytest.mark.parametrize(
    ("point", "version"),
    [(0.0, "2"), (0.2999, "2"), (0.3, "1"), (0.5, "1"), (0.9999, "1")],
)
async def test_weighted_alias_splits_by_the_draw(
    three_versions: FunctionRegistry, memory_platform: Platform, point: float, version: str
) -> None:
    await memory_platform.settings.create_alias("fn", "live", "1", "", {"2": 0.3})
    assert route(three_versions, "fn", "live", draws(point)).version == version


async def test_each_invocation_draws_again(
    three_versions: FunctionRegistry, memory_platform: Platform
) -> None:
    await memory_platform.settings.create_alias("fn", "live", "1", "", {"3": 0.5})
    draw = draws(0.1, 0.9, 0.49, 0.5)
    assert [route(three_versions, "fn", "live", draw).version for _ in range(4)] == [
        "3",
        "1",
        "3",
        "1",
    ]


@pytest.mark.parametrize(("weight", "expected"), [(0.0, "1"), (1.0, "2")])
async def test_zero_and_full_weights(
    three_versions: FunctionRegistry, memory_platform: Platform, weight: float, expected: str
) -> None:
    await memory_platform.settings.create_alias("fn", "live", "1", "", {"2": weight})
    seeded = random.Random(7).random
    assert {route(three_versions, "fn", "live", seeded).version for _ in range(200)} == {expected}


async def test_weighted_split_over_many_draws(
    three_versions: FunctionRegistry, memory_platform: Platform
) -> None:
    await memory_platform.settings.create_alias("fn", "live", "1", "", {"2": 0.2})
    draw = random.Random(20240101).random
    counts = Counter(route(three_versions, "fn", "live", draw).version for _ in range(10_000))
    assert counts.keys() == {"1", "2"}
    # σ of the share is 0.004 at n = 10,000: ±0.03 is > 7σ (and the seed fixes it anyway).
    assert abs(counts["2"] / 10_000 - 0.2) < 0.03


async def test_unknown_qualifier_is_not_found(three_versions: FunctionRegistry) -> None:
    with pytest.raises(ResourceNotFound, match="function:fn:nope"):
        route(three_versions, "fn", "nope", never_drawn)
    with pytest.raises(ResourceNotFound, match="function:fn:4"):
        route(three_versions, "fn", "4", never_drawn)


async def test_unknown_function_is_not_found(three_versions: FunctionRegistry) -> None:
    with pytest.raises(ResourceNotFound, match="function:ghost"):
        route(three_versions, "ghost", None, never_drawn)


async def test_alias_routing_rules_are_enforced(memory_platform: Platform) -> None:
    registry = memory_platform.registry
    await registry.create(new_config(), inspect(handler_zip("v1")), publish=True)
    await registry.update_code("fn", inspect(handler_zip("v2")), True, None)
    create = memory_platform.settings.create_alias
    with pytest.raises(InvalidParameterValue, match="at most one additional version"):
        await create("fn", "a", "1", "", {"2": 0.1, "3": 0.1})
    with pytest.raises(InvalidParameterValue, match=r"\$LATEST is not supported"):
        await create("fn", "a", LATEST, "", {"2": 0.1})
    with pytest.raises(InvalidParameterValue, match="own version"):
        await create("fn", "a", "1", "", {"1": 0.1})
    with pytest.raises(InvalidParameterValue, match=r"between 0\.0 and 1\.0"):
        await create("fn", "a", "1", "", {"2": 1.5})
    with pytest.raises(ResourceNotFound):
        await create("fn", "a", "1", "", {"9": 0.1})
    assert registry.get("fn").aliases == {}
