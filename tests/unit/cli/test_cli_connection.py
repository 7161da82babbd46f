"""Endpoint, credentials and region resolution of the client commands (pure functions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.cli.connection import DEFAULT_ENDPOINT, CliError, Connection, data_dir


def write_credentials(folder: Path, key_id: str = "LKIAFILE", secret: str = "s3cret") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "credentials.json").write_text(
        json.dumps({"access_key_id": key_id, "secret_access_key": secret})
    )


def test_environment_variables_win() -> None:
    conn = Connection.from_env(
        {
            "LAMINA_ACCESS_KEY_ID": "AK",
            "LAMINA_SECRET_ACCESS_KEY": "SK",
            "LAMINA_ENDPOINT": "http://10.0.0.1:9000/",
            "LAMINA_REGION": "eu-west-1",
        }
    )
    assert conn == Connection("http://10.0.0.1:9000", "AK", "SK", "eu-west-1", "000000000000")


def test_defaults_read_the_local_server_credentials(tmp_path: Path) -> None:
    write_credentials(tmp_path / "share" / "lamina")
    conn = Connection.from_env({"XDG_DATA_HOME": str(tmp_path / "share")})
    assert (conn.endpoint, conn.access_key_id, conn.secret_access_key) == (
        DEFAULT_ENDPOINT,
        "LKIAFILE",
        "s3cret",
    )
    assert conn.endpoint == "http://127.0.0.1:8790"
    assert conn.region == "us-east-1"


def test_home_and_explicit_data_dir(tmp_path: Path) -> None:
    assert data_dir({"HOME": str(tmp_path)}) == tmp_path / ".local" / "share" / "lamina"
    write_credentials(tmp_path / "elsewhere", key_id="LKIADIR")
    env = {"HOME": str(tmp_path), "LAMINA_DATA_DIR": str(tmp_path / "elsewhere")}
    assert Connection.from_env(env).access_key_id == "LKIADIR"


def test_missing_or_partial_credentials_are_explained(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="no credentials"):
        Connection.from_env({"HOME": str(tmp_path)})
    with pytest.raises(CliError, match="both"):
        Connection.from_env({"LAMINA_ACCESS_KEY_ID": "AK"})
    (tmp_path / "credentials.json").write_text("[1, 2]")
    with pytest.raises(CliError, match="JSON object"):
        Connection.from_env({"LAMINA_DATA_DIR": str(tmp_path)})


def test_client_points_boto3_at_the_endpoint() -> None:
    conn = Connection("http://127.0.0.1:1", "AK", "SK", "eu-west-1")
    client = conn.client("lambda")
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
    assert client.meta.region_name == "eu-west-1"
