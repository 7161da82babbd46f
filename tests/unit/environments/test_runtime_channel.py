"""The private runtime channel, both ends: lamina's RuntimeChannel on the event loop and
the built-in runtime's ChannelClient (blocking, in a thread), over a real socket pair."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from tests.cpus import can_pin
from tests.unit.environments.test_runtime_api import INVOCATION, RID, FakeHandler

from lamina.environments.runtime_api import MAX_BODY
from lamina.environments.runtime_channel import RuntimeChannel, invocation_frame
from lamina.runtimes.python.runtime_api import HostGone
from lamina.runtimes.python.runtime_channel import ChannelClient


@dataclass
class Pair:
    handler: FakeHandler
    channel: RuntimeChannel
    theirs: socket.socket


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    handler = FakeHandler()
    _, channel = await asyncio.get_running_loop().connect_accepted_socket(
        lambda: RuntimeChannel(handler), ours
    )
    yield Pair(handler, channel, theirs)
    channel.close()
    theirs.close()


async def until(predicate: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_next_event_reaches_the_runtime_with_runtime_api_headers(pair: Pair) -> None:
    pair.handler.queued.append(INVOCATION)
    client = ChannelClient(pair.theirs.detach())
    response = await asyncio.to_thread(client.next_invocation)
    assert response.status == 200
    assert response.body == INVOCATION.payload
    assert response.headers == {
        "content-type": "application/json",
        "lambda-runtime-aws-request-id": RID,
        "lambda-runtime-deadline-ms": str(INVOCATION.deadline_ms),
        "lambda-runtime-invoked-function-arn": INVOCATION.invoked_function_arn,
        "lambda-runtime-trace-id": INVOCATION.trace_id,
        "lambda-runtime-client-context": INVOCATION.client_context,
        "lambda-runtime-cognito-identity": INVOCATION.cognito_identity,
    }
    client.close()


async def test_a_result_travels_with_the_next_ask(pair: Pair) -> None:
    pair.handler.queued.append(INVOCATION)
    client = ChannelClient(pair.theirs.detach())
    await asyncio.to_thread(client.next_invocation)
    payload = b'{"answer": "\x00 and \xff bytes survive"}'
    assert client.post_response(RID, payload, "application/json").status == 202
    assert pair.handler.calls == []  # nothing is sent until the runtime asks for more
    ask = asyncio.create_task(asyncio.to_thread(client.next_invocation))
    await until(lambda: len(pair.handler.waiting) == 2)
    assert pair.handler.calls == [("response", RID, payload, False)]
    pair.channel.close()  # the host stops the environment
    with pytest.raises(HostGone):
        await ask


async def test_handler_error_and_init_error(pair: Pair) -> None:
    client = ChannelClient(pair.theirs.detach())
    client.post_error(RID, b'{"errorMessage": "boom"}', "ValueError", "cause")
    client.post_init_error(b'{"errorMessage": "no module"}', "Runtime.ImportModuleError")
    await until(lambda: len(pair.handler.calls) == 2)
    assert pair.handler.calls == [
        ("error", RID, "ValueError", b'{"errorMessage": "boom"}'),
        ("init_error", "Runtime.ImportModuleError", b'{"errorMessage": "no module"}'),
    ]
    client.close()


async def test_frames_split_anywhere_are_reassembled(pair: Pair) -> None:
    body = RID.encode() + b"\x00application/json\x00" + b'{"k": 1}'
    stream = struct.pack("!IB", len(body), ord("R")) + body + struct.pack("!IB", 0, ord("X"))
    for i in range(len(stream)):
        pair.theirs.send(stream[i : i + 1])
    await until(lambda: pair.handler.asked.is_set())
    assert pair.handler.calls == [("response", RID, b'{"k": 1}', False)]


async def test_an_oversized_result_is_reported_too_large_without_buffering_it(pair: Pair) -> None:
    size = MAX_BODY + 1024
    head = struct.pack("!IB", size, ord("R")) + RID.encode() + b"\x00application/json\x00"
    rest = size - (len(head) - 5)
    pair.theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(pair.theirs, head)
    chunk = b"x" * 65536
    while rest > 0:
        piece = chunk[: min(rest, len(chunk))]
        await loop.sock_sendall(pair.theirs, piece)
        rest -= len(piece)
    await loop.sock_sendall(pair.theirs, struct.pack("!IB", 0, ord("X")))  # the stream goes on
    await until(lambda: pair.handler.asked.is_set())
    assert pair.handler.calls == [("response", RID, b"", True)]
    assert len(pair.channel._buffer) == 0


async def test_unknown_frames_end_the_conversation(pair: Pair) -> None:
    pair.theirs.send(struct.pack("!IB", 0, ord("?")))
    loop = asyncio.get_running_loop()
    pair.theirs.setblocking(False)
    assert await asyncio.wait_for(loop.sock_recv(pair.theirs, 16), 5) == b""  # closed


def test_invocation_frame_round_trips_empty_optional_fields() -> None:
    from dataclasses import replace

    frame = invocation_frame(replace(INVOCATION, client_context=None, cognito_identity=None))
    length, kind = struct.unpack_from("!IB", frame)
    assert kind == ord("I") and length == len(frame) - 5
    fields = frame[5:].split(b"\x00", 7)
    assert fields[4:6] == [b"", b""] and fields[6] == b"-1" and fields[7] == INVOCATION.payload


def test_invocation_frame_carries_the_cpu_to_run_on() -> None:
    from dataclasses import replace

    frame = invocation_frame(replace(INVOCATION, cpu=1))
    assert frame[5:].split(b"\x00", 7)[6] == b"1"


async def test_a_large_event_arrives_whole(pair: Pair) -> None:
    from dataclasses import replace

    payload = b'"' + b"x" * (3 * 1024 * 1024) + b'"'  # many reads' worth
    pair.handler.queued.append(replace(INVOCATION, payload=payload))
    client = ChannelClient(pair.theirs.detach())
    response = await asyncio.to_thread(client.next_invocation)
    assert response.body == payload
    assert response.headers["lambda-runtime-aws-request-id"] == RID


@pytest.mark.skipif(not can_pin(), reason="needs two CPUs and leave to pin a thread")
async def test_the_runtime_waits_for_events_where_the_host_asks_and_runs_handlers_anywhere(
    pair: Pair,
) -> None:
    from dataclasses import replace

    cpus = os.sched_getaffinity(0)
    one = max(cpus)
    pair.handler.queued.append(replace(INVOCATION, cpu=one))
    client = ChannelClient(pair.theirs.detach())
    tids: list[int] = []

    def next_event() -> set[int]:  # as the runtime's one thread would
        tids.append(threading.get_native_id())
        client.next_invocation()
        return os.sched_getaffinity(0)  # what a handler would run with

    with ThreadPoolExecutor(1) as thread:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(thread, next_event) == cpus  # the handler: free
        pair.handler.asked.clear()
        second = loop.run_in_executor(thread, next_event)
        await until(lambda: pair.handler.asked.is_set())
        assert os.sched_getaffinity(tids[-1]) == {one}  # waiting for the event: beside the host
        assert pair.handler.waiting[-1](replace(INVOCATION, cpu=-1))
        assert await second == cpus
        pair.handler.asked.clear()
        third = loop.run_in_executor(thread, next_event)
        await until(lambda: pair.handler.asked.is_set())
        assert os.sched_getaffinity(tids[-1]) == cpus  # told to spread: waits anywhere
        assert pair.handler.waiting[-1](INVOCATION)
        assert await third == cpus
