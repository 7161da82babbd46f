"""The one pooled HTTP client every provider call goes through.

Errors become gateway errors here: a non-2xx answer is an `UpstreamError` with the
provider's status (and its retry-after), a timeout is an `UpstreamTimeout`, a refused
or dropped connection is a 502 `UpstreamError` — so the router decides on retries
from the error alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from lamina.gateway.errors import UpstreamError, UpstreamTimeout
from lamina.gateway.providers.base import Provider, UpstreamRequest


def retry_after_s(headers: httpx.Headers) -> float | None:
    raw = headers.get("retry-after-ms")
    if raw:
        try:
            return float(raw) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw:
        try:
            return float(raw)
        except ValueError:
            return None
    return None


class Upstream:
    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200,
                                keepalive_expiry=60.0),
            timeout=httpx.Timeout(60.0),
            http2=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    def _build(self, request: UpstreamRequest, timeout_s: float) -> httpx.Request:
        return self._client.build_request(
            request.method, request.url, content=request.body, headers=dict(request.headers),
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)))

    async def call(self, provider: Provider, request: UpstreamRequest,
                   timeout_s: float) -> dict[str, Any]:
        """Send and read a JSON answer, or raise the gateway error for the failure."""
        try:
            response = await self._client.send(self._build(request, timeout_s))
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"the provider did not answer within {timeout_s:g}s") \
                from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"could not reach the provider: {exc}", status=502) from exc
        if response.status_code >= 400:
            raise UpstreamError(provider.error_message(response.status_code, response.content),
                                status=response.status_code,
                                retry_after_s=retry_after_s(response.headers))
        try:
            data: dict[str, Any] = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("the provider answered with malformed JSON", status=502) \
                from exc
        return data

    @asynccontextmanager
    async def stream(self, provider: Provider, request: UpstreamRequest,
                     timeout_s: float) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a stream; yields its body chunks once the provider answered 2xx."""
        try:
            response = await self._client.send(self._build(request, timeout_s), stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"the provider did not answer within {timeout_s:g}s") \
                from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"could not reach the provider: {exc}", status=502) from exc
        try:
            if response.status_code >= 400:
                body = await response.aread()
                raise UpstreamError(provider.error_message(response.status_code, body),
                                    status=response.status_code,
                                    retry_after_s=retry_after_s(response.headers))
            yield _chunks(response, timeout_s)
        finally:
            await response.aclose()


async def _chunks(response: httpx.Response, timeout_s: float) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"the provider stalled for {timeout_s:g}s mid-stream") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"the provider's stream broke off: {exc}", status=502) from exc
