"""Zip code packages: what `inspect` refuses, and what `extract` writes (or doesn't)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import string
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.functions.support import lying_zip, make_zip, zeros_zip

from lamina.errors import InvalidParameterValue, RequestTooLarge
from lamina.functions import package
from lamina.functions.package import UNZIPPED_MAX, CodePackage, extract, inspect


def leftovers(parent: Path) -> list[str]:
    """Anything extract may have left next to its destination."""
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


# ----------------------------------------------------------------- inspect


def test_inspect_reports_lambda_code_sha256_and_unzipped_size() -> None:
    data = make_zip({"app.py": "x = 1\n", "lib/util.py": b"y" * 1000})
    pkg = inspect(data)
    digest = hashlib.sha256(data).digest()
    assert pkg.sha256_hex == digest.hex()
    assert pkg.sha256_b64 == base64.b64encode(digest).decode()
    assert pkg.unzipped_size == len("x = 1\n") + 1000
    assert pkg.data == data


@pytest.mark.parametrize(
    "body",
    [b"", b"not a zip at all", b"PK\x03\x04 truncated", make_zip({"a": "1"})[:-10]],
    ids=["empty", "text", "truncated-header", "cut-off-end"],
)
def test_not_a_zip_is_invalid_parameter_value(body: bytes) -> None:
    with pytest.raises(InvalidParameterValue, match="not a valid zip"):
        inspect(body)


def test_oversized_upload_is_request_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package, "ZIPPED_MAX", 100)
    with pytest.raises(RequestTooLarge):
        inspect(b"x" * 101)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil.py", "climbs out"),
        ("lib/../../evil.py", "climbs out"),
        ("..", "climbs out"),
        ("/etc/x", "absolute path"),
        ("/", "absolute path"),
        ("lib\\evil.py", "absolute path"),
        ("..\\evil.py", "absolute path"),
        ("C:evil.py", "absolute path"),
        ("C:/Windows/evil.py", "absolute path"),
    ],
)
def test_entries_that_leave_the_package_are_refused(name: str, why: str) -> None:
    data = make_zip({"app.py": "ok", name: "evil"})
    with pytest.raises(InvalidParameterValue, match=why):
        inspect(data)


def test_dot_segments_and_directory_entries_are_harmless(tmp_path: Path) -> None:
    data = make_zip({"./app.py": "a", "lib/./util.py": "b", "empty/": "", "./": ""})
    inspect(data)
    extract(inspect(data), tmp_path / "code")
    assert (tmp_path / "code" / "app.py").read_text() == "a"
    assert (tmp_path / "code" / "lib" / "util.py").read_text() == "b"
    assert (tmp_path / "code" / "empty").is_dir()


def test_zip_bomb_is_refused_at_inspect_from_declared_sizes() -> None:
    entry = 1 << 20
    entries = UNZIPPED_MAX // entry + 1  # 251 MiB of zeros in about 300 KB
    data = zeros_zip(entries, entry)
    assert len(data) < 1_000_000
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read(archive.infolist()[0]) == bytes(entry)  # a real, valid zip
    with pytest.raises(InvalidParameterValue, match=f"smaller than {UNZIPPED_MAX} bytes"):
        inspect(data)


def test_package_just_under_the_limit_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package, "UNZIPPED_MAX", 4 * 1024)
    assert inspect(zeros_zip(4, 1024)).unzipped_size == 4096
    with pytest.raises(InvalidParameterValue):
        inspect(zeros_zip(5, 1024))


@pytest.mark.parametrize(
    ("member", "target"),
    [
        ("link", "/etc/passwd"),
        ("link", "../outside"),
        ("lib/link", "../../outside"),
        ("lib/link", "sub/../../../outside"),
        ("link", ".."),
    ],
)
def test_symlinks_pointing_out_are_refused(member: str, target: str) -> None:
    with pytest.raises(InvalidParameterValue, match=r"[Ss]ymlink"):
        inspect(make_zip({"app.py": "ok"}, links={member: target}))


# ----------------------------------------------------------------- extract


def test_extract_writes_files_and_keeps_the_exec_bit(tmp_path: Path) -> None:
    data = make_zip(
        {"bootstrap": "#!/bin/sh\n", "app.py": "x", "lib/data.json": "{}"},
        modes={"bootstrap": 0o700, "app.py": 0o600, "lib/data.json": 0o400},
    )
    dest = tmp_path / "code" / "abc"
    extract(inspect(data), dest)
    assert (dest / "bootstrap").read_text() == "#!/bin/sh\n"
    assert (dest / "bootstrap").stat().st_mode & 0o777 == 0o755
    # Every file is readable by the runtime user; only executables keep x.
    assert (dest / "app.py").stat().st_mode & 0o777 == 0o644
    assert (dest / "lib" / "data.json").stat().st_mode & 0o777 == 0o644
    assert dest.stat().st_mode & 0o777 == 0o755
    assert leftovers(dest.parent) == ["abc"]


def test_symlinks_inside_the_package_are_kept(tmp_path: Path) -> None:
    data = make_zip(
        {"lib/real.py": "real", "top.py": "top"},
        links={"alias.py": "lib/real.py", "lib/up.py": "../top.py", "here": "."},
    )
    dest = tmp_path / "code"
    extract(inspect(data), dest)
    assert os.readlink(dest / "alias.py") == "lib/real.py"
    assert (dest / "alias.py").read_text() == "real"
    assert (dest / "lib" / "up.py").read_text() == "top"
    assert (dest / "here").resolve() == dest.resolve()


def test_a_file_written_through_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    # Each link passes the lexical check on its own ('e' -> 'a/..' looks like the root),
    # but through 'a' -> '.' it is the parent folder: the write under it must be refused.
    data = make_zip({"e/evil.py": "evil"}, links={"a": ".", "e": "a/.."})
    dest = tmp_path / "code"
    with pytest.raises(InvalidParameterValue, match="outside the package"):
        extract(inspect(data), dest)
    assert leftovers(tmp_path) == []


def test_a_file_through_a_symlinked_folder_inside_the_package_is_written(tmp_path: Path) -> None:
    data = make_zip({"out/app.py": "ok"}, links={"out": "."})
    extract(inspect(data), tmp_path / "code")
    assert (tmp_path / "code" / "app.py").read_text() == "ok"


def test_a_symlink_escaping_through_another_symlink_is_refused(tmp_path: Path) -> None:
    data = make_zip({"app.py": "ok"}, links={"a": ".", "e": "a/.."})
    (tmp_path / "secret.txt").write_text("not yours")
    with pytest.raises(InvalidParameterValue):
        extract(inspect(data), tmp_path / "code")
    assert not (tmp_path / "code").exists()


def test_extract_is_idempotent(tmp_path: Path) -> None:
    dest = tmp_path / "code"
    extract(inspect(make_zip({"app.py": "first"})), dest)
    # Content-addressed: an existing folder already holds this digest's code.
    extract(inspect(make_zip({"app.py": "second"})), dest)
    assert (dest / "app.py").read_text() == "first"
    assert leftovers(tmp_path) == ["code"]


def test_extract_that_loses_a_race_keeps_the_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "code"
    real_unpack = package._unpack

    def unpack_then_lose(data: bytes, root: Path) -> None:
        real_unpack(data, root)
        dest.mkdir()
        (dest / "app.py").write_text("winner")

    monkeypatch.setattr(package, "_unpack", unpack_then_lose)
    extract(inspect(make_zip({"app.py": "loser"})), dest)
    assert (dest / "app.py").read_text() == "winner"
    assert leftovers(tmp_path) == ["code"]


def test_failed_extract_leaves_no_partial_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first member unpacks, the second blows the (lowered) size limit.
    monkeypatch.setattr(package, "UNZIPPED_MAX", 100_000)
    data = make_zip({"a.txt": b"a" * 60_000, "b.txt": b"b" * 60_000})
    pkg = package.CodePackage(data, "x", "x", 0)  # skip inspect, which would refuse it
    with pytest.raises(InvalidParameterValue, match="smaller than"):
        extract(pkg, tmp_path / "code")
    assert leftovers(tmp_path) == []


def test_zip_whose_headers_lie_is_refused_before_it_is_accepted() -> None:
    # Every member is read once at inspect, so the lie (a CRC that cannot match) is
    # refused before the package is stored, not when it is unpacked after the 201.
    with pytest.raises(InvalidParameterValue, match="damaged"):
        inspect(lying_zip(real_size=10_000, declared_size=100))


def test_extract_still_refuses_a_lying_zip_it_is_handed(tmp_path: Path) -> None:
    data = lying_zip(real_size=10_000, declared_size=100)
    digest = hashlib.sha256(data).digest()
    pkg = CodePackage(data, digest.hex(), base64.b64encode(digest).decode(), 100)
    with pytest.raises(InvalidParameterValue):
        extract(pkg, tmp_path / "code")
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- property

_SEGMENT = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)
_NAME = st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join)


def _without_file_folder_clashes(names: list[str]) -> bool:
    """No name may be both a file and a folder above another file."""
    folders = {str(p) for n in names for p in PurePosixPath(n).parents}
    return not folders.intersection(names)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_NAME, min_size=1, max_size=12, unique=True).filter(
    _without_file_folder_clashes
))  # fmt: skip
def test_safe_relative_names_always_extract_inside_dest(names: list[str]) -> None:
    files = {name: name.encode() for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "code"
        extract(inspect(make_zip(files)), dest)
        written = {
            str(Path(root, f).relative_to(dest)) for root, _, fs in os.walk(dest) for f in fs
        }
        assert written == set(names)
        for name in names:
            assert (dest / name).resolve().is_relative_to(dest.resolve())
            assert (dest / name).read_bytes() == name.encode()
        assert sorted(os.listdir(tmp)) == ["code"]


_ESCAPES = st.sampled_from(
    [
        lambda inner, rest: "/".join([*inner, "..", *rest]),
        lambda inner, rest: "/" + "/".join([*inner, *rest]),
        lambda inner, rest: "\\".join([*inner, *rest, "x"]),
        lambda inner, rest: "C:" + "/".join([*inner, *rest]),
    ]
)


@settings(max_examples=40, deadline=None)
@given(
    inner=st.lists(_SEGMENT, max_size=3),
    rest=st.lists(_SEGMENT, min_size=1, max_size=3),
    escape=_ESCAPES,
)
def test_names_that_could_escape_are_always_refused(
    inner: list[str], rest: list[str], escape: Callable[[list[str], list[str]], str]
) -> None:
    with pytest.raises(InvalidParameterValue):
        inspect(make_zip({"app.py": "ok", escape(inner, rest): "x"}))
