"""How the client commands reach a lamina server: endpoint, credentials, region.

`Connection.from_env` is pure: each command passes `os.environ` in once, at its top.
Credentials come from LAMINA_ACCESS_KEY_ID / LAMINA_SECRET_ACCESS_KEY, else from the
`credentials.json` that `lamina serve` writes into its data dir (LAMINA_DATA_DIR, else
the default data dir), so a local server needs no set-up at all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from lamina.settings import DEFAULT_ACCOUNT_ID, DEFAULT_PORT, DEFAULT_REGION, default_data_dir

DEFAULT_ENDPOINT = f"http://127.0.0.1:{DEFAULT_PORT}"
CREDENTIALS_FILE = "credentials.json"
# A synchronous Invoke may run for the longest function timeout Lambda allows (900 s).
INVOKE_READ_TIMEOUT_S = 910


class CliError(Exception):
    """A refusal the CLI reports as `error: <message>` and exit status 1."""


def data_dir(env: Mapping[str, str]) -> Path:
    explicit = env.get("LAMINA_DATA_DIR")
    return Path(explicit) if explicit else default_data_dir(env)


def _credentials_from_file(path: Path) -> tuple[str, str] | None:
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read credentials from {path}: {exc}") from exc
    if not isinstance(stored, dict):
        raise CliError(f"{path} must hold a JSON object")
    key_id, secret = stored.get("access_key_id"), stored.get("secret_access_key")
    if not isinstance(key_id, str) or not isinstance(secret, str):
        raise CliError(f"{path} lacks access_key_id / secret_access_key")
    return key_id, secret


@dataclass(frozen=True, slots=True)
class Connection:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Connection:
        key_id = env.get("LAMINA_ACCESS_KEY_ID")
        secret = env.get("LAMINA_SECRET_ACCESS_KEY")
        if bool(key_id) != bool(secret):
            raise CliError("set both LAMINA_ACCESS_KEY_ID and LAMINA_SECRET_ACCESS_KEY, or neither")
        if not (key_id and secret):
            path = data_dir(env) / CREDENTIALS_FILE
            found = _credentials_from_file(path)
            if found is None:
                raise CliError(
                    "no credentials: set LAMINA_ACCESS_KEY_ID and LAMINA_SECRET_ACCESS_KEY, "
                    f"or start `lamina serve` once so it writes {path}"
                )
            key_id, secret = found
        return cls(
            endpoint=(env.get("LAMINA_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            access_key_id=key_id,
            secret_access_key=secret,
            region=env.get("LAMINA_REGION") or DEFAULT_REGION,
            account_id=env.get("LAMINA_ACCOUNT_ID") or DEFAULT_ACCOUNT_ID,
        )

    def client(self, service: str) -> Any:
        """A boto3 client of `service` pointed at this lamina."""
        # Imported here, not at module level: boto3 costs ~0.3 s to import and
        # `lamina serve` (same entry point) never needs it.
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )
        config = Config(
            connect_timeout=5,
            read_timeout=INVOKE_READ_TIMEOUT_S,
            retries={"mode": "standard", "max_attempts": 2},
        )
        return session.client(service, endpoint_url=self.endpoint, config=config)


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextlib.contextmanager
def reporting_errors(endpoint: str | None = None) -> Iterator[None]:
    """Print server refusals as `error: <Code>: <message>` and exit 1, without a traceback."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        WaiterError,
    )

    try:
        yield
    except CliError as exc:
        raise fail(str(exc)) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code") or "Error"
        message = error.get("Message") or str(exc)
        raise fail(f"{code}: {message}") from None
    except EndpointConnectionError:
        where = endpoint or "the endpoint"
        raise fail(f"cannot reach lamina at {where}: is `lamina serve` running?") from None
    except WaiterError as exc:
        last = exc.last_response or {}
        config = last.get("Configuration", last)
        reason = config.get("StateReason") or config.get("LastUpdateStatusReason")
        raise fail(f"{exc}: {reason}" if reason else str(exc)) from None
    except BotoCoreError as exc:
        raise fail(str(exc)) from None
