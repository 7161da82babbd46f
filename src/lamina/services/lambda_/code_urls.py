"""GetFunction's Code.Location: a time-limited, HMAC-signed download URL for the zip,
like Lambda's presigned S3 URL — usable without credentials, useless after it expires."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

URL_TTL_S = 600


class CodeUrls:
    def __init__(self, endpoint: str, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._key = key
        self._clock = clock

    def _signature(self, digest: str, expires: int) -> str:
        return hmac.new(self._key, f"{digest}:{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, digest: str) -> str:
        expires = int(self._clock()) + URL_TTL_S
        return f"{self._endpoint}/_lamina/code/{digest}?expires={expires}&signature={self._signature(digest, expires)}"

    def verify(self, digest: str, expires: str, signature: str) -> bool:
        try:
            when = int(expires)
        except ValueError:
            return False
        if when < self._clock():
            return False
        return hmac.compare_digest(self._signature(digest, when), signature)
