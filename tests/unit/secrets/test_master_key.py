"""The master key: from a setting or a 0600 file, refused when unsafe or malformed."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from lamina.secrets.master_key import (
    FILE_NAME,
    MasterKey,
    MasterKeyError,
    load_or_create_master_key,
    master_key_from_base64,
)


def test_created_once_with_owner_only_permissions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = load_or_create_master_key(data)
    path = data / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(data) == first
    # No temporary file is left next to the key.
    assert sorted(p.name for p in data.iterdir()) == [FILE_NAME]


def test_configured_key_wins_over_the_file(tmp_path: Path) -> None:
    load_or_create_master_key(tmp_path)
    configured = base64.b64encode(b"k" * 32).decode()
    assert load_or_create_master_key(tmp_path, configured).material == b"k" * 32


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_a_file_others_can_read(tmp_path: Path, mode: int) -> None:
    load_or_create_master_key(tmp_path)
    path = tmp_path / FILE_NAME
    os.chmod(path, mode)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_or_create_master_key(tmp_path)


def test_refuses_a_file_of_the_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, base64.b64encode(b"short"))
    os.close(fd)
    with pytest.raises(MasterKeyError, match="32 bytes"):
        load_or_create_master_key(tmp_path)


def test_refuses_a_symlinked_key_file(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.write_bytes(base64.b64encode(b"k" * 32))
    os.chmod(real, 0o600)
    (tmp_path / FILE_NAME).symlink_to(real)
    with pytest.raises(MasterKeyError, match="symbolic link"):
        load_or_create_master_key(tmp_path)


@pytest.mark.parametrize("text", ["not base64!", base64.b64encode(b"x" * 31).decode(), ""])
def test_bad_configured_values_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(MasterKeyError) as info:
        master_key_from_base64(text or " ")
    assert "LAMINA_MASTER_KEY" in str(info.value)
    if text:
        assert text not in str(info.value)


def test_repr_hides_the_material() -> None:
    key = MasterKey(b"\x01" * 32)
    assert "\\x01" not in repr(key) and "redacted" in repr(key)
    assert len(key.key_id) == 16
