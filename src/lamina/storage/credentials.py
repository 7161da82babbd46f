"""Root credentials: from settings, else from the data dir, else generated once.

Generated keys are written to `<data-dir>/credentials.json` with mode 0600 and
returned with `generated=True` so `lamina serve` prints them exactly once.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "credentials.json"


@dataclass(frozen=True, slots=True)
class RootCredentials:
    access_key_id: str
    secret_access_key: str
    generated: bool = False


def _new_key_id() -> str:
    alphabet = string.ascii_uppercase + "234567"
    return "LKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def load_or_create(
    data_dir: Path, access_key_id: str | None, secret_access_key: str | None
) -> RootCredentials:
    if access_key_id and secret_access_key:
        return RootCredentials(access_key_id, secret_access_key)
    path = data_dir / FILE_NAME
    if path.exists():
        stored = json.loads(path.read_text())
        return RootCredentials(stored["access_key_id"], stored["secret_access_key"])
    creds = RootCredentials(_new_key_id(), secrets.token_urlsafe(30), generated=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(
            {"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key},
            out,
        )
    return creds
