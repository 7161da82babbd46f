"""`lamina runtimes`: the runtimes the server offers and the interpreter behind each,
as its `GET /health` reports them (no credentials needed)."""

from __future__ import annotations

import os

import httpx
import typer
from rich.table import Table

from lamina.cli.connection import DEFAULT_ENDPOINT, fail
from lamina.cli.ls import table_console


def fetch_runtimes(endpoint: str, transport: httpx.BaseTransport | None = None) -> dict[str, str]:
    with httpx.Client(base_url=endpoint, timeout=10, transport=transport) as http:
        response = http.get("/health")
        response.raise_for_status()
        runtimes = response.json().get("runtimes") or {}
    return {str(name): str(path) for name, path in runtimes.items()}


def runtimes() -> None:
    """Show each runtime and the interpreter that runs it."""
    endpoint = (os.environ.get("LAMINA_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    try:
        found = fetch_runtimes(endpoint)
    except httpx.HTTPStatusError as exc:
        raise fail(f"{endpoint}/health answered {exc.response.status_code}") from None
    except (httpx.HTTPError, ValueError) as exc:
        raise fail(f"cannot reach lamina at {endpoint}: {exc}") from None
    if not found:
        typer.echo("The server reports no runtimes.")
        return
    table = Table("Runtime", "Interpreter")
    for name in sorted(found):
        table.add_row(name, found[name])
    table_console().print(table)
