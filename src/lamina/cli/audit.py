"""`lamina audit`: who called what, when, and whether it was allowed.

Reads `GET /_lamina/audit` with the root secret (as `lamina envs` does); filters by
time (`--since 1h`), principal ARN, operation name, and denied calls only.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from lamina.cli.connection import CliError, Connection, fail
from lamina.cli.logs import parse_since
from lamina.cli.ls import table_console


def fetch_audit(
    connection: Connection,
    params: dict[str, str],
    transport: httpx.BaseTransport | None = None,
) -> list[dict[str, Any]]:
    with httpx.Client(base_url=connection.endpoint, timeout=30, transport=transport) as http:
        response = http.get(
            "/_lamina/audit",
            params=params,
            headers={"Authorization": f"Bearer {connection.secret_access_key}"},
        )
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
    return events


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def audit(
    since: Annotated[str, typer.Option(help="How far back: 10m, 2h, 1d, or an ISO time.")] = "1h",
    principal: Annotated[str | None, typer.Option(help="Only calls by this principal ARN.")] = None,
    operation: Annotated[
        str | None, typer.Option(help="Only this operation (CreateFunction).")
    ] = None,
    denied: Annotated[bool, typer.Option("--denied", help="Only denied calls.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many (the latest).")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show the audit log of control-plane calls (root credentials only)."""
    params = {"since": str(parse_since(since, time.time())), "limit": str(limit)}
    if principal:
        params["principal"] = principal
    if operation:
        params["operation"] = operation
    if denied:
        params["denied"] = "1"
    try:
        events = fetch_audit(Connection.from_env(os.environ), params)
    except CliError as exc:
        raise fail(str(exc)) from None
    except httpx.HTTPStatusError as exc:
        raise fail(f"{exc.request.url} answered {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach lamina: {exc}") from None
    if as_json:
        for event in events:
            typer.echo(json.dumps(event, sort_keys=True))
        return
    table = Table("Time", "Principal", "Source IP", "Call", "Resource", "Result", "Request id")
    for e in events:
        result = "allowed" if e["allowed"] else "DENIED"
        if e["error_code"]:
            result += f" ({e['error_code']})"
        table.add_row(
            _stamp(e["time_ms"]), e["principal_arn"] or e["access_key_id"], e["source_ip"],
            f"{e['service']}:{e['operation']}", e["resource"], result, e["request_id"],
        )  # fmt: skip
    table_console().print(table)
