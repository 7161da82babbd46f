"""`lamina` command line: `serve` runs the server; the rest are HTTP clients of its API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lamina.cli import client_commands

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Lamina: self-hosted serverless."
)
client_commands.register(app)


@app.callback()
def _root() -> None:
    """Lamina: self-hosted serverless."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where state, code and logs live.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML configuration file.")
    ] = None,
) -> None:
    """Run lamina: the AWS-compatible API, execution environments and the AI gateway."""
    from lamina.cli.serve import run_server
    from lamina.settings import Settings

    settings = Settings.from_env(
        os.environ, host=host, port=port, data_dir=data_dir, config_file=config
    )
    run_server(settings)


def main() -> None:
    app()
