"""Environment around a real subprocess: a stdlib fake runtime (fake_runtime.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lamina.environments.environment import Environment
from lamina.environments.lifecycle import EnvState, IllegalTransition
from lamina.environments.process import LaunchSpec
from lamina.environments.runtime_api import Invocation
from lamina.functions.model import FunctionConfig

FAKE_RUNTIME = Path(__file__).with_name("fake_runtime.py")
ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
CONFIG = FunctionConfig(
    name="fn",
    version="$LATEST",
    runtime="provided.al2023",
    handler="bootstrap",
    role="arn:aws:iam::123456789012:role/r",
    code_sha256="ab" * 32,
    code_size=1,
    revision_id="rev-1",
    last_modified="2024-01-01T00:00:00.000+0000",
    memory_mb=256,
    timeout_s=3,
)
LONG = 60.0  # an invoke timeout that is never the point of the test


@dataclass
class ListSink:
    """The LogSink: every append, as it came."""

    batches: list[tuple[str, str, list[tuple[int, str]]]] = field(default_factory=list)

    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        self.batches.append((group, stream, list(events)))

    def lines(self) -> list[str]:
        return [line for _, _, events in self.batches for _, line in events]

    def invocation(self, request_id: str) -> list[str]:
        """The batch holding one invocation's START ... REPORT."""
        for _, _, events in self.batches:
            lines = [line for _, line in events]
            if f"START RequestId: {request_id} Version: $LATEST" in lines:
                return lines
        raise AssertionError(f"no log batch for {request_id}: {self.batches}")


def between_start_and_end(lines: list[str], request_id: str) -> list[str]:
    start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
    end = lines.index(f"END RequestId: {request_id}")
    return lines[start + 1 : end]


def invocation(**event: Any) -> Invocation:
    return Invocation(
        request_id=str(uuid.uuid4()),
        payload=json.dumps(event).encode(),
        deadline_ms=0,  # the environment sets it at delivery
        invoked_function_arn=ARN,
        trace_id="Root=1-65a1b2c3-0123456789abcdef01234567;Sampled=0",
    )


StartEnv = Callable[..., Awaitable[Environment]]


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
async def start_env(tmp_path: Path, sink: ListSink) -> AsyncIterator[StartEnv]:
    """Starts environments on the fake runtime; stops them and awaits their exit after."""
    started: list[Environment] = []

    async def start(
        argv: tuple[str, ...] = (sys.executable, "-S", "-u", str(FAKE_RUNTIME)),
        extra_env: dict[str, str] | None = None,
        config: FunctionConfig = CONFIG,
    ) -> Environment:
        env = Environment(f"env{len(started)}", config, sink)
        scratch = tmp_path / env.id
        scratch.mkdir()

        def spec_for(address: str) -> LaunchSpec:
            variables = {"AWS_LAMBDA_RUNTIME_API": address, **(extra_env or {})}
            return LaunchSpec(argv, variables, str(tmp_path), scratch)

        started.append(env)
        await env.start(spec_for)
        return env

    yield start
    for env in started:
        env.stop()
    watchers = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "Environment._watch_exit"
    ]
    await asyncio.wait_for(asyncio.gather(*watchers), 30)


def answer(payload: bytes) -> dict[str, Any]:
    decoded = json.loads(payload)
    assert isinstance(decoded, dict)
    return decoded


async def test_cold_start_then_warm_reuse(start_env: StartEnv, sink: ListSink) -> None:
    env = await start_env()
    assert env.state is EnvState.STARTING

    first = invocation(n=1)
    before_ms = time.time() * 1000
    cold = await env.invoke(first, LONG)
    after_ms = time.time() * 1000
    body = answer(cold.payload)
    assert cold.function_error is None
    assert body["count"] == 1
    assert body["event"] == {"n": 1}
    headers = body["headers"]
    assert headers["lambda-runtime-aws-request-id"] == first.request_id
    assert headers["lambda-runtime-invoked-function-arn"] == ARN
    assert headers["lambda-runtime-trace-id"] == first.trace_id
    # The deadline runs from delivery, timeout seconds ahead of the wall clock.
    assert before_ms + LONG * 1000 - 1 <= int(headers["lambda-runtime-deadline-ms"])
    assert int(headers["lambda-runtime-deadline-ms"]) <= after_ms + LONG * 1000
    assert cold.init_duration_ms is not None and cold.init_duration_ms > 0
    assert cold.max_memory_mb > 0
    assert env.state is EnvState.IDLE  # type: ignore[comparison-overlap]

    second = invocation(n=2)
    warm = await env.invoke(second, LONG)
    warm_body = answer(warm.payload)
    assert warm_body["count"] == 2  # the same process served it
    assert warm_body["pid"] == body["pid"]
    assert warm.init_duration_ms is None
    assert env.state is EnvState.IDLE

    await asyncio.sleep(0)  # END and REPORT follow the answer by a turn of the loop
    cold_report = sink.invocation(first.request_id)[-1]
    warm_report = sink.invocation(second.request_id)[-1]
    assert cold_report.startswith(f"REPORT RequestId: {first.request_id}\tDuration: ")
    assert "\tMemory Size: 256 MB\t" in cold_report
    assert f"\tInit Duration: {cold.init_duration_ms:.2f} ms\t" in cold_report
    assert warm_report.startswith(f"REPORT RequestId: {second.request_id}\t")
    assert "Init Duration" not in warm_report
    assert warm.log_tail.endswith(warm_report + "\n")

    group, stream, _ = sink.batches[0]
    assert group == "/aws/lambda/fn"
    assert stream == env.log_stream_name
    assert stream.endswith("/[$LATEST]env0")
    assert f"INIT_START Runtime Version: provided.al2023 Environment: {env.id}" in sink.lines()
    assert "init: runtime starting" in sink.lines()


async def test_output_lands_between_start_and_end(start_env: StartEnv, sink: ListSink) -> None:
    env = await start_env()
    await env.invoke(invocation(), LONG)  # cold start out of the way
    inv = invocation(print=["hello", "", "wörld \t tabs"])
    result = await env.invoke(inv, LONG)
    await asyncio.sleep(0)  # END and REPORT follow the answer by a turn of the loop
    lines = sink.invocation(inv.request_id)
    assert lines[0] == f"START RequestId: {inv.request_id} Version: $LATEST"
    assert between_start_and_end(lines, inv.request_id) == ["hello", "", "wörld \t tabs"]
    assert lines[-2] == f"END RequestId: {inv.request_id}"
    assert lines[-1].startswith(f"REPORT RequestId: {inv.request_id}\t")
    assert result.log_tail == "".join(line + "\n" for line in lines)


async def test_end_and_report_follow_the_answer_and_keep_their_place(
    start_env: StartEnv, sink: ListSink
) -> None:
    env = await start_env()
    await env.invoke(invocation(), LONG)  # cold start out of the way
    await asyncio.sleep(0)
    first, second, third = invocation(print=["one"]), invocation(), invocation()
    batches = len(sink.batches)
    result = await env.invoke(first, LONG)
    # The answer is back before its END and REPORT are written: they cost the caller
    # nothing (a read of the cgroup's peak memory, the formatting, the log's append).
    assert len(sink.batches) == batches
    assert result.lines[-1] == (result.lines[-1][0], "one")
    # The next invocation, started before the loop's turn, writes them first.
    await env.invoke(second, LONG)
    end, report = sink.invocation(first.request_id)[-2:]
    assert end == f"END RequestId: {first.request_id}"
    assert report.startswith(f"REPORT RequestId: {first.request_id}\t")
    await asyncio.sleep(0)
    requests = [line.split()[2] for line in sink.lines() if line.startswith("START RequestId:")]
    assert requests[-2:] == [first.request_id, second.request_id]
    # Asking for the log (LogType=Tail) or the peak memory writes them at once.
    result = await env.invoke(third, LONG)
    assert result.max_memory_mb > 0
    assert result.log_lines[-1][1].startswith(f"REPORT RequestId: {third.request_id}\t")
    assert result.log_tail.endswith(result.log_lines[-1][1] + "\n")
    assert sink.invocation(third.request_id)[-1] == result.log_lines[-1][1]
    await asyncio.sleep(0)
    assert (
        sum(line.startswith(f"REPORT RequestId: {third.request_id}") for line in sink.lines()) == 1
    )


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_caller_that_stops_waiting_during_init_leaves_the_run_going(
    start_env: StartEnv, sink: ListSink
) -> None:
    env = await start_env(extra_env={"FAKE_INIT_SLEEP": "0.3"})
    inv = invocation(print=["ran anyway"])
    waiting = asyncio.create_task(env.invoke(inv, LONG))
    await asyncio.sleep(0.05)
    assert env.state is EnvState.BUSY  # still in init
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The invocation is handed over once init ends, runs, and the environment is free.
    await until(lambda: env.state is EnvState.IDLE)
    await asyncio.sleep(0)
    lines = sink.invocation(inv.request_id)
    assert between_start_and_end(lines, inv.request_id) == ["ran anyway"]
    assert "Init Duration" in lines[-1]
    assert answer((await env.invoke(invocation(), LONG)).payload)["count"] == 2


async def test_a_caller_that_stops_waiting_does_not_stop_the_timeout(
    start_env: StartEnv, sink: ListSink
) -> None:
    env = await start_env()
    await env.invoke(invocation(), LONG)
    inv = invocation(action="sleep")
    waiting = asyncio.create_task(env.invoke(inv, 0.5))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await until(lambda: env.state is EnvState.STOPPED)
    lines = sink.invocation(inv.request_id)
    assert lines[-1].endswith("\tStatus: timeout\t")


async def test_handler_error_returns_its_error_document(start_env: StartEnv) -> None:
    env = await start_env()
    result = await env.invoke(invocation(action="error"), LONG)
    assert result.function_error == "Unhandled"
    assert answer(result.payload) == {"errorMessage": "boom", "errorType": "ValueError"}
    assert env.state is EnvState.IDLE  # an error does not cost the environment
    assert answer((await env.invoke(invocation(), LONG)).payload)["count"] == 2


async def test_error_body_that_is_not_json_is_wrapped(start_env: StartEnv) -> None:
    env = await start_env()
    result = await env.invoke(invocation(action="raw-error"), LONG)
    assert result.function_error == "Unhandled"
    assert answer(result.payload) == {"errorType": "Custom.Oops", "errorMessage": "not json"}


async def test_response_for_another_request_id_is_400(start_env: StartEnv) -> None:
    env = await start_env()
    result = await env.invoke(invocation(action="wrong-id"), LONG)
    assert answer(result.payload) == {"wrong_id_status": 400}


async def test_oversize_response_is_a_function_error(start_env: StartEnv) -> None:
    env = await start_env()
    result = await env.invoke(invocation(action="huge"), LONG)
    assert result.function_error == "Unhandled"
    error = answer(result.payload)
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size (6291456 bytes)" in error["errorMessage"]
    assert env.state is EnvState.IDLE


async def test_timeout_stops_the_environment(start_env: StartEnv, sink: ListSink) -> None:
    env = await start_env()
    inv = invocation(action="sleep", print=["going to sleep"])
    result = await env.invoke(inv, 0.5)
    assert result.function_error == "Unhandled"
    assert answer(result.payload) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {inv.request_id} Error: Task timed out after 3.00 seconds",
    }
    assert env.state is EnvState.STOPPED
    assert not env.alive
    lines = sink.invocation(inv.request_id)
    assert lines[-1].endswith("\tStatus: timeout\t")
    assert any(
        line.endswith(f"{inv.request_id} Task timed out after 3.00 seconds") for line in lines
    )
    with pytest.raises(IllegalTransition):
        await env.invoke(invocation(), LONG)


async def test_runtime_exit_mid_invocation_is_exit_error(
    start_env: StartEnv, sink: ListSink
) -> None:
    env = await start_env()
    inv = invocation(action="exit", code=3, print=["about to exit"])
    result = await env.invoke(inv, LONG)
    message = f"RequestId: {inv.request_id} Error: Runtime exited with error: exit status 3"
    assert result.function_error == "Unhandled"
    assert answer(result.payload) == {"errorType": "Runtime.ExitError", "errorMessage": message}
    assert env.state is EnvState.STOPPED
    assert env.exit_status == "exit status 3"
    lines = sink.invocation(inv.request_id)
    assert between_start_and_end(lines, inv.request_id) == [
        "about to exit",
        message,
        "Runtime.ExitError",
    ]
    assert lines[-1].endswith("\tStatus: error\t")


async def test_init_error_is_the_first_invocations_answer(start_env: StartEnv) -> None:
    env = await start_env(extra_env={"FAKE_INIT_ERROR": "1"})
    result = await env.invoke(invocation(), LONG)
    assert result.function_error == "Unhandled"
    assert answer(result.payload) == {
        "errorType": "Runtime.ImportModuleError",
        "errorMessage": "No module 'app'",
    }
    assert result.init_duration_ms is not None


async def test_a_runtime_that_cannot_be_launched_stops_at_once(
    start_env: StartEnv, sink: ListSink, tmp_path: Path
) -> None:
    env = await start_env(argv=(str(tmp_path / "no-such-bootstrap"),))
    assert env.state is EnvState.STOPPED
    assert sink.lines() == [f"INIT_START Runtime Version: provided.al2023 Environment: {env.id}"]


async def test_stop_is_final_and_safe_twice(start_env: StartEnv) -> None:
    env = await start_env()
    await env.invoke(invocation(), LONG)
    env.stop()
    env.stop()
    assert env.state is EnvState.STOPPED
    with pytest.raises(IllegalTransition):
        await env.invoke(invocation(), LONG)
