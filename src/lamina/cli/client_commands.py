"""Client commands of the `lamina` CLI (deploy, invoke, logs, ls); registered on the app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the client commands to `app`. Each command lives in its own module."""
