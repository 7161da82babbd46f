"""`lamina envs`: the live execution environments with their state and memory.

Forked environments share their zygote's pages copy-on-write, so RSS overstates what
each costs: PSS splits shared pages among the sharers and USS counts only a
process's own pages — the memory stopping it would give back.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from rich.table import Table

from lamina.cli.connection import CliError, Connection, fail
from lamina.cli.ls import table_console


def fetch_environments(connection: Connection, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    with httpx.Client(base_url=connection.endpoint, timeout=10, transport=transport) as http:
        response = http.get(
            "/_lamina/environments",
            headers={"Authorization": f"Bearer {connection.secret_access_key}"},
        )
        response.raise_for_status()
        data: dict[str, Any] = response.json()
    return data


def _mb(kb: int) -> str:
    return f"{kb / 1024:.1f}"


def envs() -> None:
    """List live execution environments: function, version, state, pid, RSS/PSS/USS (MB)."""
    try:
        connection = Connection.from_env(os.environ)
        data = fetch_environments(connection)
    except CliError as exc:
        raise fail(str(exc)) from None
    except httpx.HTTPStatusError as exc:
        raise fail(f"{exc.request.url} answered {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach lamina: {exc}") from None
    table = Table("Function", "Version", "State", "PID", "Kind", "RSS", "PSS", "USS")
    for env in data["environments"]:
        kind = "provisioned" if env["provisioned"] else ("snapstart" if env["restored"] else "on-demand")
        table.add_row(
            env["function"], env["version"], env["state"], str(env["pid"]), kind,
            _mb(env["rss_kb"]), _mb(env["pss_kb"]), _mb(env["uss_kb"]),
        )  # fmt: skip
    total = data["total"]
    table.add_row(
        f"{data['count']} environments", "", "", "", "",
        _mb(total["rss_kb"]), _mb(total["pss_kb"]), _mb(total["uss_kb"]),
    )  # fmt: skip
    table_console().print(table)
