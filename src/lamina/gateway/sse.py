"""Server-sent events: an incremental decoder for upstream streams and the encoders
for the two inbound dialects (OpenAI's `data:` lines, Anthropic's named events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Event:
    event: str  # "message" when the stream names none
    data: str


class EventDecoder:
    """Feeds bytes as they arrive; yields each complete event (per the WHATWG rules
    that matter here: `event:` and `data:` fields, blank line ends an event)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        # Every chunk of every stream comes through here: one split per chunk, and the
        # two lines a chunk is mostly made of (`data: ...` and the blank line ending
        # the event) handled without the general rules.
        if self._buffer:
            chunk = self._buffer + chunk
        # Lines end in "\n" or "\r\n"; a bare "\r" line ending is not supported.
        lines = chunk.split(b"\n")
        self._buffer = lines.pop()  # what follows the last newline: a line not yet ended
        events: list[Event] = []
        for raw in lines:
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if raw.startswith(b"data:"):
                value = raw[6:] if raw.startswith(b"data: ") else raw[5:]
                self._data.append(value.decode("utf-8"))
                continue
            event = self._line(raw.decode("utf-8")) if raw else self._end()
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[Event]:
        return self.feed(b"\n\n") if self._buffer or self._data else []

    def _end(self) -> Event | None:
        """A blank line: the event so far, if it has data."""
        if not self._data:
            self._event = ""
            return None
        event = Event(self._event or "message", "\n".join(self._data))
        self._event, self._data = "", []
        return event

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._end()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class DataEvents:
    """Splits a stream into events as `EventDecoder` does, but hands over each event
    that is a lone `data: ` line — all that OpenAI-compatible servers send — as its own
    bytes, blank line included, so that it can be relayed as sent. From the first event
    that is anything else (another field, a comment, CR line ends, ...) on, the rest of
    the stream goes through an `EventDecoder` and comes out as `Event`s.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._decoder: EventDecoder | None = None

    def feed(self, chunk: bytes) -> list[bytes | Event]:
        if self._decoder is not None:
            return [*self._decoder.feed(chunk)]
        buffer = self._buffer + chunk if self._buffer else chunk
        out: list[bytes | Event] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                if buffer.find(b"\r", start) < 0:
                    self._buffer = buffer[start:]
                    return out
            elif (
                buffer.startswith(b"data: ", start)
                and buffer.find(b"\n", start, end) < 0
                and buffer.find(b"\r", start, end) < 0
            ):
                out.append(buffer[start:end + 2])
                start = end + 2
                continue
            # Not a lone data line, or CR line ends (whose events never end in two LFs).
            # Every event before this one was complete: a fresh decoder takes over at
            # this event's first byte in the state the one before it would be in.
            self._buffer = b""
            self._decoder = EventDecoder()
            return out + self._decoder.feed(buffer[start:])

    def flush(self) -> list[bytes | Event]:
        """What the stream left unterminated, by EventDecoder's rules."""
        if self._decoder is None:
            if not self._buffer:
                return []
            self._decoder = EventDecoder()
            rest, self._buffer = self._buffer, b""
            return [*self._decoder.feed(rest), *self._decoder.flush()]
        return [*self._decoder.flush()]


def openai_event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def named_event(payload: Any) -> bytes:
    """An event named by its payload's `type` (Anthropic's and the Responses API's)."""
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) \
        + b"\n\n"


anthropic_event = named_event
