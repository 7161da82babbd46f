"""The one pooled HTTP client every provider call goes through (http1.py).

Errors become gateway errors here: a non-2xx answer is an `UpstreamError` with the
provider's status (and its retry-after), a timeout is an `UpstreamTimeout`, a refused
or dropped connection is a 502 `UpstreamError` — so the router decides on retries
from the error alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson

from lamina.gateway.errors import UpstreamError, UpstreamTimeout
from lamina.gateway.http1 import HTTP1Client, HTTPError, Timeout
from lamina.gateway.providers.base import Provider, UpstreamRequest


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return float(raw) / scale
            except ValueError:
                return None
    return None


def _failure(exc: HTTPError, timeout_s: float, what: str) -> UpstreamError | UpstreamTimeout:
    if isinstance(exc, Timeout):
        return UpstreamTimeout(f"the provider did not answer within {timeout_s:g}s ({exc})")
    return UpstreamError(f"{what}: {exc}", status=502)


class Upstream:
    def __init__(self, client: HTTP1Client | None = None) -> None:
        self._client = client or HTTP1Client()

    async def close(self) -> None:
        await self._client.aclose()

    async def call(self, provider: Provider, request: UpstreamRequest,
                   timeout_s: float) -> dict[str, Any]:
        """Send and read a JSON answer, or raise the gateway error for the failure."""
        try:
            async with self._client.request(request.method, request.url, request.headers,
                                            request.body, timeout_s) as response:
                body = await response.read()
        except HTTPError as exc:
            raise _failure(exc, timeout_s, "could not reach the provider") from exc
        if response.status >= 400:
            raise UpstreamError(provider.error_message(response.status, body),
                                status=response.status,
                                retry_after_s=retry_after_s(response.headers))
        try:
            data: dict[str, Any] = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("the provider answered with malformed JSON", status=502) \
                from exc
        return data

    @asynccontextmanager
    async def stream(self, provider: Provider, request: UpstreamRequest,
                     timeout_s: float) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a stream; yields its body chunks once the provider answered 2xx."""
        try:
            async with self._client.request(request.method, request.url, request.headers,
                                            request.body, timeout_s) as response:
                if response.status >= 400:
                    body = await response.read()
                    raise UpstreamError(provider.error_message(response.status, body),
                                        status=response.status,
                                        retry_after_s=retry_after_s(response.headers))
                yield _chunks(response.chunks(), timeout_s)
        except HTTPError as exc:
            raise _failure(exc, timeout_s, "could not reach the provider") from exc


async def _chunks(chunks: AsyncIterator[bytes], timeout_s: float) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except HTTPError as exc:
        raise _failure(exc, timeout_s, "the provider's stream broke off") from exc
