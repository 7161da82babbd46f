"""`GET /_lamina/audit`: the audit log over HTTP, for the root credentials only.

    Authorization: Bearer <root secret access key>
    ?since=<epoch ms>&principal=<ARN>&operation=<Name>&denied=1&limit=<n ≤ 10000>

Answers `{"events": [...], "count": n}`, oldest first. Reading the audit log is not
itself an AWS call, so it is not audited; only the root may do it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson

from lamina.audit.store import AuditLog, AuditQuery

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
PATH = "/_lamina/audit"


def parse_query(query_string: str) -> AuditQuery:
    query = {k: v[-1] for k, v in parse_qs(query_string).items()}
    since = query.get("since")
    return AuditQuery(
        since_ms=int(since) if since else None,
        principal_arn=query.get("principal") or None,
        operation=query.get("operation") or None,
        denied_only=query.get("denied", "").lower() in ("1", "true", "yes"),
        limit=int(query.get("limit") or 1000),
    )


class AuditEndpoint:
    def __init__(self, log: AuditLog, root_secret: str) -> None:
        self._log = log
        self._secret = root_secret

    async def __call__(self, scope: Scope, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        if not hmac.compare_digest(given.encode(), f"Bearer {self._secret}".encode()):
            await _json(
                send, 403, {"message": "Send the root secret as 'Authorization: Bearer <secret>'."}
            )
            return
        try:
            query = parse_query(scope.get("query_string", b"").decode("latin-1"))
        except ValueError:
            await _json(send, 400, {"message": "since and limit must be integers."})
            return
        events = await self._log.query(query)
        await _json(send, 200, {"events": [e.as_json() for e in events], "count": len(events)})


async def _json(send: Send, status: int, body: Any) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
