"""Zip builders and in-memory fakes shared by the functions tests."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from lamina.functions.aliases import FunctionSettings
from lamina.functions.model import Alias, EventInvokeConfig, Function, FunctionConfig
from lamina.functions.registry import FunctionRegistry
from lamina.invocation.concurrency import Concurrency
from lamina.storage.functions import FunctionRepository

ACCOUNT = "123456789012"
REGION = "us-east-1"


def arn(name: str, qualifier: str | None) -> str:
    base = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def make_zip(
    files: Mapping[str, bytes | str] | None = None,
    *,
    links: Mapping[str, str] | None = None,
    modes: Mapping[str, int] | None = None,
) -> bytes:
    """A zip of `links` (name -> target), then `files` (name -> content) with unix modes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
        for name, content in (files or {}).items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | (modes or {}).get(name, 0o644)) << 16
            archive.writestr(info, content)
    return buf.getvalue()


def handler_zip(marker: str = "v1") -> bytes:
    return make_zip({"app.py": f"def handler(event, context):\n    return {marker!r}\n"})


def zeros_zip(entries: int, entry_size: int) -> bytes:
    """A valid zip of `entries` members, each `entry_size` zero bytes, deflated.

    Built by hand around one deflate stream so that a 250 MB bomb costs one
    compression of `entry_size` bytes instead of all of them.
    """
    zeros = bytes(entry_size)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = packer.compress(zeros) + packer.flush()
    crc = zlib.crc32(zeros)
    local, central = bytearray(), bytearray()
    for i in range(entries):
        name = f"zeros/{i:05d}.bin".encode()
        offset = len(local)
        local += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, 0, zipfile.ZIP_DEFLATED, 0, 0x21,
            crc, len(stream), entry_size, len(name), 0,
        )  # fmt: skip
        local += name + stream
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 0x0314, 20, 0, zipfile.ZIP_DEFLATED, 0, 0x21,
            crc, len(stream), entry_size, len(name), 0, 0, 0, 0, (stat.S_IFREG | 0o644) << 16,
            offset,
        )  # fmt: skip
        central += name
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, entries, entries, len(central), len(local), 0
    )
    return bytes(local + central + end)


def lying_zip(real_size: int = 10_000, declared_size: int = 100) -> bytes:
    """One member whose headers declare fewer bytes than its data inflates to."""
    raw = bytearray(make_zip({"big.txt": b"x" * real_size}))
    # Uncompressed size: offset 22 in the local header, 24 in the central directory.
    struct.pack_into("<L", raw, 22, declared_size)
    struct.pack_into("<L", raw, raw.find(b"PK\x01\x02") + 24, declared_size)
    return bytes(raw)


def new_config(name: str = "fn", **changes: object) -> FunctionConfig:
    """A CreateFunction request's configuration, before the registry fills it in."""
    fields: dict[str, object] = {
        "name": name,
        "version": "$LATEST",
        "runtime": "python3.12",
        "handler": "app.handler",
        "role": f"arn:aws:iam::{ACCOUNT}:role/lambda",
        "code_sha256": "",
        "code_size": 0,
        "revision_id": "",
        "last_modified": "",
    }
    fields.update(changes)
    return FunctionConfig(**fields)  # type: ignore[arg-type]


class MemoryBlobs:
    """The registry's BlobStore, in a dict; digests in `corrupt` read back as garbage."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.corrupt: set[str] = set()

    def put(self, digest: str, data: bytes) -> None:
        self.data.setdefault(digest, data)

    def get(self, digest: str) -> bytes:
        if digest in self.corrupt:
            return b"this is not the zip that was uploaded"
        return self.data[digest]


class MemoryRepository:
    """FunctionRepository's methods over dicts: what a restart would load, without SQL."""

    def __init__(self) -> None:
        self.functions: dict[str, Function] = {}
        self.versions: dict[tuple[str, str], FunctionConfig] = {}
        self.aliases: dict[tuple[str, str], Alias] = {}
        self.invoke_configs: dict[tuple[str, str], EventInvokeConfig] = {}

    async def load_all(self) -> dict[str, Function]:
        found = {
            name: Function(
                latest=fn.latest,
                reserved_concurrency=fn.reserved_concurrency,
                next_version=fn.next_version,
                created=fn.created,
            )
            for name, fn in self.functions.items()
        }
        for (name, version), version_config in self.versions.items():
            found[name].versions[version] = version_config
        for (name, alias_name), alias in self.aliases.items():
            found[name].aliases[alias_name] = alias
        for (name, qualifier), invoke_config in self.invoke_configs.items():
            found[name].event_invoke_configs[qualifier] = invoke_config
        return found

    async def save_function(self, fn: Function, version: FunctionConfig | None = None) -> None:
        self.functions[fn.name] = Function(
            latest=fn.latest,
            reserved_concurrency=fn.reserved_concurrency,
            next_version=fn.next_version,
            created=fn.created,
        )
        if version is not None:
            self.versions[(fn.name, version.version)] = version

    async def save_version(self, config: FunctionConfig) -> None:
        self.versions[(config.name, config.version)] = config

    async def delete_function(self, name: str) -> None:
        self.functions.pop(name, None)
        for table in (self.versions, self.aliases, self.invoke_configs):
            for key in [k for k in table if k[0] == name]:
                del table[key]

    async def delete_version(self, name: str, version: str) -> None:
        self.versions.pop((name, version), None)

    async def save_alias(self, alias: Alias) -> None:
        self.aliases[(alias.function, alias.name)] = alias

    async def delete_alias(self, function: str, alias: str) -> None:
        self.aliases.pop((function, alias), None)

    async def save_invoke_config(
        self, function: str, qualifier: str, config: EventInvokeConfig
    ) -> None:
        self.invoke_configs[(function, qualifier)] = config

    async def delete_invoke_config(self, function: str, qualifier: str) -> None:
        self.invoke_configs.pop((function, qualifier), None)


class FixedClock:
    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Platform:
    """What the Lambda service builds around one database: registry, settings, repository."""

    registry: FunctionRegistry
    settings: FunctionSettings
    repo: FunctionRepository
    concurrency: Concurrency


OpenPlatform = Callable[[], Awaitable[Platform]]
