"""`lamina invoke NAME`: call a function synchronously and print what it returned."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from lamina.cli.connection import CliError, Connection, reporting_errors


def read_payload(payload: str | None) -> bytes:
    """The request payload: JSON text, or `@file` to read it from a file."""
    if payload is None:
        return b"{}"
    if payload.startswith("@"):
        try:
            return Path(payload[1:]).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read payload file {payload[1:]}: {exc}") from exc
    return payload.encode()


def render_payload(raw: bytes) -> str:
    """Pretty JSON when the payload is JSON, else the payload as text."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def invoke(
    name: Annotated[str, typer.Argument(help="Function name or ARN.")],
    payload: Annotated[
        str | None, typer.Option(help="Event as JSON, or @FILE to read it from a file.")
    ] = None,
    qualifier: Annotated[str | None, typer.Option(help="Version or alias.")] = None,
    log: Annotated[
        bool, typer.Option("--log", help="Print the invocation's log tail to stderr.")
    ] = False,
) -> None:
    """Invoke the function and print its response; exit 1 if the function failed."""
    with reporting_errors():
        connection = Connection.from_env(os.environ)
        request: dict[str, Any] = {
            "FunctionName": name,
            "InvocationType": "RequestResponse",
            "Payload": read_payload(payload),
        }
    if qualifier:
        request["Qualifier"] = qualifier
    if log:
        request["LogType"] = "Tail"
    with reporting_errors(connection.endpoint):
        response = connection.client("lambda").invoke(**request)
        body = response["Payload"].read()
    if log and response.get("LogResult"):
        tail = base64.b64decode(response["LogResult"]).decode("utf-8", errors="replace")
        typer.echo(tail.rstrip("\n"), err=True)
    typer.echo(render_payload(body))
    if response.get("FunctionError"):
        typer.echo(f"error: function error ({response['FunctionError']})", err=True)
        raise typer.Exit(1)
