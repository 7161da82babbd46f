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
        self._buffer += chunk
        events: list[Event] = []
        # Lines end in "\n" or "\r\n"; a bare "\r" line ending is not supported.
        while (end := self._buffer.find(b"\n")) >= 0:
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1:]
            event = self._line(raw.rstrip(b"\r").decode("utf-8"))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[Event]:
        return self.feed(b"\n\n") if self._buffer or self._data else []

    def _line(self, line: str) -> Event | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = Event(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
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
