"""Relaying an OpenAI-compatible provider's stream: its events split off as sent
(DataEvents), read for usage, errors and the first token, and passed on untouched
where the relay leaves them as they were — the same chunks as decoding and encoding
each one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import orjson
import pytest

from lamina.gateway.api.openai import sse_chunks
from lamina.gateway.errors import UpstreamError
from lamina.gateway.pricing import Usage
from lamina.gateway.providers.openai import OpenAIStream
from lamina.gateway.service import StreamReply
from lamina.gateway.sse import DONE, DataEvents, Event, EventDecoder
from lamina.gateway.streaming import OpenStream, Relay

STREAMS = [
    b'data: {"a": 1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n',
    # A named event midway: it and everything after go through the EventDecoder.
    b'data: {"a":1}\n\nevent: x\ndata: {"b":2}\n\ndata: {"c":3}\n\n',
    b'data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\n',  # CR line ends
    b': keep-alive\n\ndata: {"a":1}\n\n',  # a comment first
    b'data: {"a":1}\n\n\ndata: {"b":2}\n\n',  # an extra blank line
    b'data: line1\ndata: line2\n\ndata: {"c":3}\n\n',  # a multi-line event
    b'data:{"a":1}\n\ndata: {"b":2}\n\n',  # no space after the colon
    b'data: {"a":1}\n\ndata: {"b":2}',  # the last event unterminated
    b"",
]


def as_events(items: list[bytes | Event]) -> list[Event]:
    return [Event("message", item[6:-2].decode()) if isinstance(item, bytes) else item
            for item in items]


@pytest.mark.parametrize("raw", STREAMS)
def test_data_events_are_the_event_decoders_events_split_anywhere(raw: bytes) -> None:
    for size in (1, 2, 5, 13, max(1, len(raw))):
        split, decoder = DataEvents(), EventDecoder()
        items: list[bytes | Event] = []
        events: list[Event] = []
        for i in range(0, len(raw), size):
            items += split.feed(raw[i:i + size])
            events += decoder.feed(raw[i:i + size])
            assert as_events(items) == events, (size, i)  # each as soon as it is complete
        assert as_events(items + split.flush()) == events + decoder.flush(), size


def test_lone_data_lines_come_out_as_sent() -> None:
    split = DataEvents()
    assert split.feed(b'data: {"a": 1}\n\ndata: {"b"') == [b'data: {"a": 1}\n\n']
    assert split.feed(b":2}\n\n") == [b'data: {"b":2}\n\n']
    # From the first other event on, Events.
    assert split.feed(b"event: e\ndata: x\n\ndata: y\n\n") == [Event("e", "x"),
                                                             Event("message", "y")]


def test_feed_data_is_feed_for_chat_chunks() -> None:
    stream = OpenAIStream()
    assert stream.feed_data(b"[DONE]") == []
    chunk = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    assert stream.feed_data(orjson.dumps(chunk)) == [chunk]
    assert stream.usage == Usage(prompt_tokens=3, completion_tokens=2)
    with pytest.raises(UpstreamError):
        stream.feed_data(b'{"error": {"message": "boom"}}')
    # A Responses API event is not a chat chunk: `feed` translates it.
    assert stream.feed_data(b'{"type":"response.created","response":{}}') is None


def chunk(delta: dict[str, Any] | None, usage: Any = "absent") -> bytes:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk",
                            "choices": [] if delta is None else [{"index": 0, "delta": delta}]}
    if usage != "absent":
        body["usage"] = usage
    # Spaced as some servers send it: the relayed bytes keep the provider's spelling.
    return b"data: " + orjson.dumps(body).replace(b'":', b'": ') + b"\n\n"


USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
UPSTREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}) + chunk({"content": "lo"}),  # two events in one read
    chunk({}, usage=None),  # "usage": null on a chunk with choices (OpenAI's own way)
    chunk(None, usage=USAGE),  # the usage chunk
    b"data: [DONE]\n\n",
]


class Ticket:
    def __init__(self) -> None:
        self.settled: list[int] = []
        self.released = 0

    def settle(self, tokens: int) -> None:
        self.settled.append(tokens)

    def release(self) -> None:
        self.released += 1


async def body(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def relay(parts: list[bytes], include_usage: bool, done: list[tuple[Any, ...]],
          ticket: Ticket | None = None) -> Relay:
    decoder = OpenAIStream()
    stream = OpenStream(AsyncExitStack(), body(parts), EventDecoder(), decoder, decoder)
    clock = iter(range(100, 200))
    return Relay(stream, ticket or Ticket(), include_usage, lambda: float(next(clock)),
                 lambda *args: done.append(args))


@pytest.mark.parametrize("include_usage", [False, True])
async def test_sent_is_chunks_with_the_providers_bytes(include_usage: bool) -> None:
    done_chunks: list[tuple[Any, ...]] = []
    decoded = [c async for c in relay(UPSTREAM, include_usage, done_chunks).chunks()]
    done_sent: list[tuple[Any, ...]] = []
    ticket = Ticket()
    sent = [p async for p in relay(UPSTREAM, include_usage, done_sent, ticket).sent()]
    assert [c for c, _ in sent] == decoded
    assert done_sent == done_chunks == [(200, Usage(prompt_tokens=5, completion_tokens=3),
                                         100.0, None)]
    assert ticket.settled == [8] and ticket.released == 1
    events = b"".join(UPSTREAM)
    for c, raw in sent:
        if raw is not None:
            assert raw in events and orjson.loads(raw[6:-2]) == c  # as the provider sent it
    untouched = [raw is not None for _, raw in sent]
    if include_usage:
        assert untouched == [True] * 5
    else:
        # "usage": null stripped from the fourth (so encoded anew); the usage chunk withheld.
        assert untouched == [True, True, True, False]
        assert "usage" not in sent[3][0]


async def test_sse_chunks_send_the_same_events_either_way() -> None:
    async def events(verbatim: bool) -> list[bytes]:
        r = relay(UPSTREAM, False, [])
        reply = StreamReply(r.chunks(), {}, r.close, r.sent() if verbatim else None)
        return [e async for e in sse_chunks(reply)]

    as_sent, encoded = await events(True), await events(False)
    assert as_sent[-1] == encoded[-1] == DONE
    assert [orjson.loads(e[6:]) for e in as_sent[:-1]] == \
        [orjson.loads(e[6:]) for e in encoded[:-1]]
    assert as_sent[1] == chunk({"content": "Hel"})  # byte for byte


async def test_an_error_event_ends_the_stream_and_is_accounted() -> None:
    done: list[tuple[Any, ...]] = []
    parts = [chunk({"content": "x"}), b'data: {"error": {"message": "overloaded"}}\n\n']
    r = relay(parts, False, done)
    reply = StreamReply(r.chunks(), {}, r.close, r.sent())
    events = [e async for e in sse_chunks(reply)]
    assert events[0] == parts[0]
    assert orjson.loads(events[1][6:])["error"]["message"] == "overloaded"
    assert done[0][0] == 502
