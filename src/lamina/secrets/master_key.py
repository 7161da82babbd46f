"""The master key: the key-encryption key every other key in lamina is wrapped by.

It comes from configuration (`LAMINA_MASTER_KEY`, 32 bytes in base64) or from
`<data-dir>/master.key`, created on first start. Whoever reads that file can decrypt
every secret, so lamina refuses to start when the file is readable or writable by
anyone but its owner, or is not exactly a key. It never regenerates a key that
exists: a new key would silently orphan everything sealed with the old one.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

KEY_BYTES = 32
FILE_NAME = "master.key"


class MasterKeyError(Exception):
    """The configured or stored master key cannot be used; lamina must not start."""


@dataclass(frozen=True, slots=True, repr=False)
class MasterKey:
    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise MasterKeyError(f"A master key is {KEY_BYTES} bytes, not {len(self.material)}.")

    @property
    def key_id(self) -> str:
        """A public fingerprint naming this key in sealed blobs (for rotation), not the key."""
        digest = hmac.new(self.material, b"lamina master key id", hashlib.sha256).hexdigest()
        return digest[:16]

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r}, material=<redacted>)"

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))


def master_key_from_base64(text: str, *, source: str = "LAMINA_MASTER_KEY") -> MasterKey:
    """Decode a configured key; the error names `source`, never the value."""
    try:
        material = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{source} is not valid base64.") from None
    if len(material) != KEY_BYTES:
        raise MasterKeyError(
            f"{source} must decode to {KEY_BYTES} bytes, not {len(material)}; "
            f'create one with: python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
        )
    return MasterKey(material)


def load_or_create_master_key(data_dir: Path, configured: str | None = None) -> MasterKey:
    """The configured key if given, else the data dir's key file, created on first use."""
    if configured:
        return master_key_from_base64(configured)
    path = data_dir / FILE_NAME
    try:
        return read_master_key_file(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = MasterKey.generate()
    try:
        _create_exclusively(path, base64.b64encode(key.material) + b"\n")
    except FileExistsError:
        # Another process started at the same moment and won the race: use its key.
        return read_master_key_file(path)
    return key


def read_master_key_file(path: Path) -> MasterKey:
    """Read a key file, refusing one that others can read or that is not a key."""
    try:
        # O_NOFOLLOW: a symlink could point the server at a key someone else controls.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MasterKeyError(
                f"{path} is a symbolic link; the master key must be a file."
            ) from None
        raise
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise MasterKeyError(f"{path} is not a regular file.")
        if info.st_mode & 0o077:
            raise MasterKeyError(
                f"{path} has permissions {stat.S_IMODE(info.st_mode):04o}; the master key "
                f"must be readable by its owner only: chmod 600 {path}"
            )
        content = file.read(4096)
    return master_key_from_base64(content.decode("ascii", "replace"), source=str(path))


def _create_exclusively(path: Path, content: bytes) -> None:
    """Write `content` to a new file at `path` atomically, mode 0600.

    The key is written to a temporary file and linked into place, so a crash never
    leaves a half-written key file, and O_EXCL semantics of `link` mean two starting
    processes cannot both install their own key.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
