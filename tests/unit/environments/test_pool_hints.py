"""EnvironmentPool's idle hint and `has_idle`, over real environments.

Environments start through `pool.launch` as `provided.al2023` functions whose bootstrap
runs the stdlib fake runtime (fake_runtime.py). After every step the running sum of the
hints per code key must equal that revision's idle stack: the other serving processes
steer calls by it (serving/placement.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from lamina.environments.capacity import Capacity
from lamina.environments.environment import Environment
from lamina.environments.launcher import HostFacts
from lamina.environments.pool import EnvironmentPool
from lamina.environments.runtime_api import Invocation
from lamina.functions.model import FunctionConfig, State, UpdateStatus

FAKE_RUNTIME = Path(__file__).with_name("fake_runtime.py")
LONG = 60.0  # an invoke or init timeout that is never the point of the test
IDLE_TIMEOUT_S = 1.0  # the reaper then looks every 0.5 s


def config(name: str = "fn", version: str = "$LATEST", revision: str = "rev-1") -> FunctionConfig:
    return FunctionConfig(
        name=name,
        version=version,
        runtime="provided.al2023",
        handler="bootstrap",
        role="arn:aws:iam::123456789012:role/r",
        code_sha256="ab" * 32,
        code_size=1,
        revision_id=revision,
        last_modified="2024-01-01T00:00:00.000+0000",
        memory_mb=128,
        timeout_s=3,
        state=State.ACTIVE,
        last_update_status=UpdateStatus.SUCCESSFUL,
    )


A, B, C = config("a"), config("b"), config("c")


class NullSink:
    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        pass


class Clock:
    """Monotonic time that a test can move forward (past the idle timeout)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@dataclass
class Hints:
    """The pool's `idle_hint`: every change as told, and their running sum per code key."""

    changes: list[tuple[str, int]] = field(default_factory=list)
    told: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, code_key: str, change: int) -> None:
        self.changes.append((code_key, change))
        self.told.set()

    def sums(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for key, change in self.changes:
            total[key] = total.get(key, 0) + change
        return {key: n for key, n in total.items() if n}

    def since(self, mark: int) -> list[tuple[str, int]]:
        return self.changes[mark:]


def idle_stacks(pool: EnvironmentPool) -> dict[str, int]:
    # The pool's own idle stacks (private): the truth the hints must add up to.
    stacks: dict[str, list[Environment]] = pool._idle
    return {key: len(stack) for key, stack in stacks.items() if stack}


@dataclass
class Node:
    pool: EnvironmentPool
    hints: Hints
    clock: Clock
    launched: list[Environment]

    def check(self) -> None:
        if self.pool.idle_hint is not None:
            assert self.hints.sums() == idle_stacks(self.pool)

    async def launch(self, cfg: FunctionConfig) -> Environment:
        env = await self.pool.launch(cfg)
        self.launched.append(env)
        return env

    async def warm(self, cfg: FunctionConfig, n: int = 1) -> list[Environment]:
        """`n` initialised environments handed to the pool idle, as the deploy warmer does."""
        envs = [await self.launch(cfg) for _ in range(n)]
        for env in envs:
            assert await env.warm(LONG) is None
            self.pool.release(env)
            self.check()
        return envs


def invocation(**event: Any) -> Invocation:
    return Invocation(
        request_id=str(uuid.uuid4()),
        payload=json.dumps(event).encode(),
        deadline_ms=0,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        trace_id="Root=1-65a1b2c3-0123456789abcdef01234567;Sampled=0",
    )


MakeNode = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[MakeNode]:
    """Pools whose functions' bootstrap is the fake runtime; closed, and their
    environments' exits awaited, after the test."""
    code = tmp_path / "code" / A.code_sha256
    code.mkdir(parents=True)
    bootstrap = code / "bootstrap"
    bootstrap.write_text(f"#!/bin/sh\nexec '{sys.executable}' -S -u '{FAKE_RUNTIME}'\n")
    bootstrap.chmod(0o755)
    facts = HostFacts(
        region="us-east-1",
        account_id="123456789012",
        endpoint="http://127.0.0.1:9",
        interpreters={},
        code_root=tmp_path / "code",
        run_root=tmp_path / "run",
        path=os.environ.get("PATH", "/usr/bin:/bin"),
    )
    nodes: list[Node] = []

    async def make(*, hinted: bool = True, capacity: Capacity | None = None) -> Node:
        clock = Clock()
        pool = EnvironmentPool(facts, NullSink(), IDLE_TIMEOUT_S, clock, capacity=capacity)
        hints = Hints()
        if hinted:
            pool.idle_hint = hints
        node = Node(pool, hints, clock, [])
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.pool.close()
        await asyncio.wait_for(asyncio.gather(*(e.exited() for e in node.launched)), 30)


async def test_release_and_take_each_hint_one(make_node: MakeNode) -> None:
    node = await make_node()
    pool, hints = node.pool, node.hints
    _, second = await node.warm(A, 2)
    await node.warm(B)
    assert hints.changes == [(A.code_key, 1), (A.code_key, 1), (B.code_key, 1)]
    assert pool.has_idle(A) and pool.has_idle(B)
    assert not pool.has_idle(C)

    assert pool.take_idle(A) is second  # last in, first out
    assert hints.changes[-1] == (A.code_key, -1)
    node.check()
    result = await second.invoke(invocation(n=1), LONG)  # back to the pool when it ends
    assert result.function_error is None
    assert hints.changes[-1] == (A.code_key, 1)
    node.check()
    assert pool.take_idle(C) is None
    assert len(hints.changes) == 5  # nothing for a revision with no stack
    node.check()


async def test_a_busy_environment_is_here_but_not_idle(make_node: MakeNode) -> None:
    node = await make_node()
    pool, hints = node.pool, node.hints
    env = await node.launch(A)
    assert not pool.has_idle(A)  # starting: here, not idle
    assert hints.changes == []
    await env.invoke(invocation(), LONG)  # the cold start, then idle
    assert hints.changes == [(A.code_key, 1)]
    assert pool.has_idle(A)
    assert pool.take_idle(A) is env
    assert not pool.has_idle(A)  # taken for a call: busy
    assert hints.sums() == {}
    node.check()
    pool.release(env)
    # Another revision of the same function is another code key.
    assert pool.has_idle(A)
    assert not pool.has_idle(replace(A, revision_id="rev-2"))
    assert not pool.has_idle(replace(A, version="1"))


async def test_an_environment_that_dies_in_an_invocation_leaves(make_node: MakeNode) -> None:
    node = await make_node()
    pool, hints = node.pool, node.hints
    (env,) = await node.warm(A)
    assert pool.take_idle(A) is env
    result = await env.invoke(invocation(action="exit", code=3), LONG)
    assert result.function_error == "Unhandled"
    assert not env.alive
    assert hints.changes == [(A.code_key, 1), (A.code_key, -1)]  # not released as idle
    assert not pool.has_idle(A)
    node.check()


async def test_take_idle_hints_each_dead_environment_it_pops(make_node: MakeNode) -> None:
    node = await make_node()
    pool, hints = node.pool, node.hints
    bottom, middle, top = await node.warm(A, 3)
    top.stop()
    middle.stop()
    mark = len(hints.changes)
    assert pool.take_idle(A) is bottom  # past the two dead ones
    assert hints.since(mark) == [(A.code_key, -1)] * 3
    node.check()
    assert not pool.has_idle(A)  # `bottom` is busy, the rest were dead
    bottom.stop()
    pool.release(bottom)  # a dead one back from its call: forgotten, not idle
    assert len(hints.changes) == mark + 3
    assert not pool.has_idle(A)
    node.check()


async def test_a_stack_of_only_dead_environments_gives_none(make_node: MakeNode) -> None:
    node = await make_node()
    pool, hints = node.pool, node.hints
    for env in await node.warm(A, 2):
        env.stop()
    assert pool.has_idle(A)  # not known dead until popped or reaped
    assert pool.take_idle(A) is None
    assert hints.changes[-2:] == [(A.code_key, -1)] * 2
    assert not pool.has_idle(A)
    node.check()
    assert pool.take_idle(A) is None  # the emptied stack again: no hint
    assert len(hints.changes) == 4


async def test_retire_hints_the_whole_stack_down(make_node: MakeNode) -> None:
    node = await make_node()
    pool, hints = node.pool, node.hints
    old, new = A, replace(A, revision_id="rev-2")
    await node.warm(old, 2)
    await node.warm(new)
    await node.warm(B)
    mark = len(hints.changes)
    pool.retire("a", keep=lambda c: c.revision_id == "rev-2")
    assert hints.since(mark) == [(old.code_key, -2)]  # one change for the stack
    assert not pool.has_idle(old)
    assert pool.has_idle(new) and pool.has_idle(B)
    node.check()
    pool.retire("a")
    assert hints.changes[-1] == (new.code_key, -1)
    assert not pool.has_idle(new)
    assert hints.sums() == {B.code_key: 1}
    node.check()


async def test_retire_leaves_busy_environments_counted(make_node: MakeNode) -> None:
    node = await make_node()
    pool = node.pool
    first, second = await node.warm(A, 2)
    assert pool.take_idle(A) is second
    pool.retire("a")
    assert not first.alive
    assert not pool.has_idle(A)  # `second` is still running a call, the rest retired
    node.check()
    await second.invoke(invocation(), LONG)  # ends, back in the (emptied) stack
    assert node.hints.sums() == {A.code_key: 1}
    node.check()


async def test_the_reaper_hints_what_it_stops(make_node: MakeNode) -> None:
    node = await make_node()
    pool, hints = node.pool, node.hints
    stale, kept = await node.warm(A, 2)
    kept.provisioned = True  # provisioned: never reaped for idleness
    await node.warm(B)
    pool.start()
    mark = len(hints.changes)
    node.clock.offset = IDLE_TIMEOUT_S * 10
    hints.told.clear()
    await asyncio.wait_for(hints.told.wait(), 10)
    assert sorted(hints.since(mark)) == [(A.code_key, -1), (B.code_key, -1)]
    assert not stale.alive and kept.alive
    assert pool.has_idle(A) and not pool.has_idle(B)
    node.check()
    assert pool.take_idle(A) is kept


async def test_close_hints_every_stack_down(make_node: MakeNode) -> None:
    node = await make_node()
    pool, hints = node.pool, node.hints
    await node.warm(A, 2)
    await node.warm(B)
    await node.launch(C)  # busy (starting): no stack to hint
    mark = len(hints.changes)
    await pool.close()
    assert sorted(hints.since(mark)) == [(A.code_key, -2), (B.code_key, -1)]
    assert hints.sums() == {}
    assert not any(pool.has_idle(c) for c in (A, B, C))
    node.check()


async def test_capacity_evictions_keep_the_hint_equal_to_the_stack(make_node: MakeNode) -> None:
    # A start over the memory budget stops idle environments where they lie; the stack
    # and the hint keep counting them until they are popped or reaped.
    budget = Capacity(256, 1000, 1.0, available_mb=lambda: None, reserve_mb=0)
    node = await make_node(capacity=budget)
    pool, hints = node.pool, node.hints
    (evicted,) = await node.warm(A)
    await node.warm(B)
    await node.launch(C)  # 3 x 128 MB > 256: the least recently idle (A's) is stopped
    assert not evicted.alive
    node.check()
    assert pool.take_idle(A) is None
    assert hints.changes[-1] == (A.code_key, -1)
    assert not pool.has_idle(A)
    node.check()


async def test_a_pool_without_a_hint_callback_works_the_same(make_node: MakeNode) -> None:
    node = await make_node(hinted=False)
    pool = node.pool
    (env,) = await node.warm(A)
    env.stop()
    await node.warm(A)
    assert pool.take_idle(A) is not None
    pool.retire("a")
    assert not pool.has_idle(A)  # only the taken one is left, busy
    await pool.close()
    assert node.hints.changes == []
    assert not pool.has_idle(A)
