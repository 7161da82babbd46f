"""Client commands of the `lamina` CLI (deploy, invoke, logs, ls, runtimes).

Each command lives in its own module and is a plain function; `register` adds them
to the app, so importing this module registers nothing by itself.
"""

from __future__ import annotations

import typer

from lamina.cli.audit import audit
from lamina.cli.deploy import deploy
from lamina.cli.envs import envs
from lamina.cli.invoke import invoke
from lamina.cli.logs import logs
from lamina.cli.ls import ls
from lamina.cli.runtimes import runtimes
from lamina.cli.sign import sign


def register(app: typer.Typer) -> None:
    """Add the client commands to `app`."""
    app.command("deploy")(deploy)
    app.command("invoke")(invoke)
    app.command("logs")(logs)
    app.command("ls")(ls)
    app.command("runtimes")(runtimes)
    app.command("envs")(envs)
    app.command("sign")(sign)
    app.command("audit")(audit)
