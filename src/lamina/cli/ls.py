"""`lamina ls`: the functions on the server, one row each."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.table import Table

from lamina.cli.connection import Connection, reporting_errors

COLUMNS = ("Name", "Runtime", "Memory (MB)", "Timeout (s)", "State", "Last modified")


def table_console() -> Console:
    """A console for tables: the terminal's width, or unbounded when piped, so a
    script reading the output gets whole names instead of wrapped or cut ones."""
    console = Console()
    return console if console.is_terminal else Console(width=10_000)


def function_rows(client: Any) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for page in client.get_paginator("list_functions").paginate():
        for function in page.get("Functions", []):
            state = function.get("State")
            if state is None:
                # Lambda leaves State out of ListFunctions; ask for it where it is missing.
                config = client.get_function_configuration(FunctionName=function["FunctionName"])
                state = config.get("State", "")
            rows.append(
                (
                    function["FunctionName"],
                    function.get("Runtime", ""),
                    str(function.get("MemorySize", "")),
                    str(function.get("Timeout", "")),
                    state,
                    function.get("LastModified", ""),
                )
            )
    return sorted(rows)


def ls() -> None:
    """List the functions: name, runtime, memory, timeout, state, last modified."""
    with reporting_errors():
        connection = Connection.from_env(os.environ)
    with reporting_errors(connection.endpoint):
        rows = function_rows(connection.client("lambda"))
    console = table_console()
    if not rows:
        console.print("No functions.")
        return
    table = Table(*COLUMNS)
    for row in rows:
        table.add_row(*row)
    console.print(table)
