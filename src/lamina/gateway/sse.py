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


def openai_event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def named_event(payload: Any) -> bytes:
    """An event named by its payload's `type` (Anthropic's and the Responses API's)."""
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) \
        + b"\n\n"


anthropic_event = named_event
