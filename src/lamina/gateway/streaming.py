"""Relaying an upstream stream to the client, chunk by chunk, as it arrives.

The relay decodes the provider's events into chat.completion.chunks, withholds the
usage chunk from clients that did not ask for it (lamina always asks upstream, to
account the call), folds the answer for the cache, and, however the stream ends —
finished, broken upstream, or the client gone — closes the upstream response,
releases the rate-limit ticket and reports the call exactly once.

When the provider speaks the client's dialect (an OpenAI-compatible provider's chat
chunks, for an OpenAI client) `sent()` also hands over each event's own bytes where
the relay left its chunk as it was, so that the client gets them as the provider sent
them rather than decoded and encoded again; every chunk is still read for usage,
errors and the first token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol

from lamina.gateway.folding import Folder
from lamina.gateway.pricing import Usage
from lamina.gateway.providers.base import JSON, EventSource, StreamDecoder
from lamina.gateway.sse import DataEvents, Event

# (status, usage, time of first token, folded completion) → accounted
Done = Callable[[int, Usage | None, float | None, JSON | None], None]

CLIENT_CLOSED = 499


class Admitted(Protocol):
    """The call's hold on limits and budget (service.Admission)."""

    def settle(self, tokens: int) -> None: ...

    def release(self) -> None: ...


class Verbatim(Protocol):
    """A decoder whose chunks can be the provider's events as sent (OpenAIStream)."""

    def feed_data(self, data: bytes) -> list[JSON] | None: ...


@dataclass(slots=True)
class OpenStream:
    stack: AsyncExitStack  # owns the upstream response
    body: AsyncIterator[bytes]
    events: EventSource
    decoder: StreamDecoder
    verbatim: Verbatim | None = None  # the decoder, where it can relay events as sent


class Relay:
    def __init__(self, stream: OpenStream, ticket: Admitted, include_usage: bool,
                 clock: Callable[[], float], done: Done, *, fold: bool = False) -> None:
        self._stream = stream
        self._ticket = ticket
        self._include_usage = include_usage
        self._clock = clock
        self._done: Done | None = done
        self._ttft: float | None = None
        # Folding the answer (for the cache) costs per chunk: only when it is kept.
        self._folder = Folder() if fold else None

    async def chunks(self) -> AsyncIterator[JSON]:
        async with _Accounted(self):
            events = self._stream.events
            async for raw in self._stream.body:
                for chunk in self._decoded(events.feed(raw)):
                    yield chunk
            for chunk in self._decoded(events.flush()):
                yield chunk

    async def sent(self) -> AsyncIterator[tuple[JSON, bytes | None]]:
        """As `chunks`, each chunk with the provider's event when the client may be sent
        that as it is: a lone `data:` line whose chunk the relay left unchanged. Only for
        a stream with a `verbatim` decoder."""
        async with _Accounted(self):
            split = DataEvents()
            async for raw in self._stream.body:
                for item in split.feed(raw):
                    for pair in self._sent(item):
                        yield pair
            for item in split.flush():
                for pair in self._sent(item):
                    yield pair

    def _decoded(self, events: list[Event]) -> list[JSON]:
        return [
            visible
            for event in events
            for chunk in self._stream.decoder.feed(event)
            if (visible := self._visible(chunk)) is not None
        ]

    def _sent(self, item: bytes | Event) -> list[tuple[JSON, bytes | None]]:
        if isinstance(item, bytes):
            assert self._stream.verbatim is not None
            data = item[6:-2]  # b"data: " ... b"\n\n"
            chunks = self._stream.verbatim.feed_data(data)
            if chunks is not None:
                out: list[tuple[JSON, bytes | None]] = []
                for chunk in chunks:  # [] or [the event's chunk]
                    visible = self._visible(chunk)
                    if visible is not None:
                        out.append((visible, item if visible is chunk else None))
                return out
            item = Event("message", data.decode("utf-8"))
        return [(visible, None) for chunk in self._stream.decoder.feed(item)
                if (visible := self._visible(chunk)) is not None]

    def _visible(self, chunk: JSON) -> JSON | None:
        if self._ttft is None and chunk.get("choices"):
            self._ttft = self._clock()
        if self._folder is not None:
            self._folder.feed(chunk)
        if self._include_usage or "usage" not in chunk:
            return chunk
        if not chunk.get("choices"):
            return None  # the usage-only final chunk the client did not ask for
        return {k: v for k, v in chunk.items() if k != "usage"}

    async def close(self, status: int = CLIENT_CLOSED) -> None:
        """Idempotent: end the upstream call and account it (also for a stream the
        client never started reading)."""
        done, self._done = self._done, None
        if done is None:
            return
        try:
            await self._stream.stack.aclose()
        finally:
            usage = self._stream.decoder.usage
            self._ticket.settle(usage.total_tokens if usage else 0)
            self._ticket.release()
            done(status, usage, self._ttft,
                 self._folder.completion() if status == 200 and self._folder else None)


class _Accounted:
    """Around a relay's reading: however it ends, close the relay with the status the
    call is accounted under — 200 when read to the end, the upstream error's status
    when it broke, 499 when the client stopped reading (or the task was cancelled)."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            status = 200
        elif isinstance(exc, Exception):  # not GeneratorExit nor CancelledError
            status = int(getattr(exc, "status", 502))
        else:
            status = CLIENT_CLOSED
        await self._relay.close(status)
