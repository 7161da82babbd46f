"""Zip code packages: validated before they are accepted, extracted without escaping.

A package is refused (InvalidParameterValueException) when it is not a zip, when an
entry's path is absolute or climbs out with `..`, when a symlink points outside the
package, or when it would unpack past Lambda's 250 MB limit (checked against the
declared sizes first, then again against the bytes actually written, because a
crafted zip can lie about its sizes).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lamina.errors import InvalidParameterValue, RequestTooLarge

UNZIPPED_MAX = 262_144_000
ZIPPED_MAX = 52_428_800 * 2  # direct uploads: Lambda's 50 MB, base64 in JSON nearly doubles it
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class CodePackage:
    data: bytes
    sha256_hex: str
    sha256_b64: str  # CodeSha256 as Lambda reports it
    unzipped_size: int


def _refuse(why: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Could not unzip uploaded file. {why}")


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The entry's path inside the package, or None for a directory-only entry."""
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refuse(f"Entry '{name}' has an absolute path; paths in the zip must be relative.")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise _refuse(f"Entry '{name}' climbs out of the package with '..'.")
    parts = [p for p in path.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def inspect(data: bytes) -> CodePackage:
    """Check a zip without writing anything; returns its digest and unpacked size."""
    import base64

    if len(data) > ZIPPED_MAX:
        raise RequestTooLarge(
            f"Zipped package is {len(data)} bytes; the limit is {ZIPPED_MAX // 2}."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise _refuse(f"The body is not a valid zip archive ({exc}); upload a .zip file.") from exc
    total = 0
    for info in infos:
        target = _safe_member_path(info.filename)
        if target is not None and _is_symlink(info):
            link = archive.read(info).decode("utf-8", "replace")
            _check_link(target, link)
        total += info.file_size
        if total > UNZIPPED_MAX:
            raise InvalidParameterValue(f"Unzipped size must be smaller than {UNZIPPED_MAX} bytes")
    # Read every member once (sizes were checked above, so this is bounded): a damaged
    # member is refused now, not discovered when the code is unpacked after the 201.
    try:
        damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise _refuse(f"The archive is damaged ({exc}).") from exc
    if damaged is not None:
        raise _refuse(f"Entry '{damaged}' is damaged (its CRC does not match).")
    digest = hashlib.sha256(data).digest()
    return CodePackage(data, digest.hex(), base64.b64encode(digest).decode(), total)


def _check_link(member: PurePosixPath, link: str) -> None:
    if link.startswith("/"):
        raise _refuse(f"Symlink '{member}' points to an absolute path '{link}'.")
    depth = len(member.parts) - 1
    for part in PurePosixPath(link).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise _refuse(f"Symlink '{member}' points outside the package: '{link}'.")


def extract(package: CodePackage, dest: Path) -> None:
    """Unpack into `dest` atomically: a sibling temp folder renamed into place."""
    if dest.exists():
        return  # content-addressed: the same digest is the same code
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        _unpack(package.data, tmp)
        os.chmod(tmp, 0o755)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another extract won the race
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _unpack(data: bytes, root: Path) -> None:
    try:
        _write_members(data, root)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        # e.g. a header that lies about a member's size ends in a CRC error
        raise _refuse(f"The archive is damaged or inconsistent ({exc}).") from exc
    _check_links_resolve_inside(root)


def _check_links_resolve_inside(root: Path) -> None:
    """Each link was checked as text; a chain of links (`a -> .`, `e -> a/..`) can still
    lead out, so check where every link really resolves once all of them exist."""
    top = root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink() and not path.resolve().is_relative_to(top):
                raise _refuse(f"Symlink '{path.relative_to(root)}' resolves outside the package.")


def _write_members(data: bytes, root: Path) -> None:
    written = 0
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            rel = _safe_member_path(info.filename)
            if rel is None:
                continue
            target = root.joinpath(*rel.parts)
            # Resolve the parent after creating it: a symlinked folder must not lead out.
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.parent.resolve().is_relative_to(root.resolve()):
                raise _refuse(f"Entry '{info.filename}' would be written outside the package.")
            if _is_symlink(info):
                link = archive.read(info).decode()
                _check_link(rel, link)
                os.symlink(link, target)
                continue
            mode = (info.external_attr >> 16) & 0o777
            with archive.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > UNZIPPED_MAX:
                        raise InvalidParameterValue(
                            f"Unzipped size must be smaller than {UNZIPPED_MAX} bytes"
                        )
                    out.write(chunk)
            # Keep the executable bit (a custom runtime's `bootstrap` needs it); Lambda
            # makes every file readable by the runtime user.
            os.chmod(target, 0o755 if mode & 0o111 else 0o644)
