"""The ASGI chores lamina's own apps share: the lifespan, a whole body, a JSON answer."""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("lamina")


async def lifespan(
    receive: Receive,
    send: Send,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    what: str,
) -> None:
    """A serving process's ASGI lifespan: `start` before it serves, `stop` at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await start()
            except Exception as exc:
                log.exception("%s failed to start", what)
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            # What start-up built lives as long as the process (botocore's models,
            # policies, the app): out of the collector's sight, a full collection walks
            # only what requests leave behind, not ~150,000 objects (tens of ms here,
            # in the middle of whichever request it lands on).
            gc.freeze()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Receive) -> bytes | None:
    """The request's whole body, or None if the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def send_json(send: Send, status: int, body: Any) -> None:
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
