"""Content-addressed blob store on the local disk (an S3-compatible store in a cluster)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class LocalBlobStore:
    """Blobs named by their sha256 hex digest; each is fsynced before `put` returns."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def path(self, digest: str) -> Path:
        return self._root / digest[:2] / digest

    def put(self, digest: str, data: bytes) -> None:
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)
