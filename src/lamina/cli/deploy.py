"""`lamina deploy DIR`: package a folder (and its requirements) and create or update
the function from it, then wait until lamina reports it ready."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from lamina.cli.code_package import build_package, needs_other_python, usable_pip
from lamina.cli.connection import Connection, reporting_errors
from lamina.cli.runtimes import fetch_runtimes

WAIT = {"Delay": 1, "MaxAttempts": 900}


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--env")
        variables[key] = value
    return variables


def _is_missing(exc: Exception) -> bool:
    response: Mapping[str, Any] = getattr(exc, "response", {}) or {}
    return bool(response.get("Error", {}).get("Code") == "ResourceNotFoundException")


def _step(progress: Progress, description: str) -> TaskID:
    return progress.add_task(description, total=None)


def _done(progress: Progress, task: TaskID, description: str) -> None:
    progress.update(task, description=f"[green]✓[/] {description}", total=1, completed=1)


DEFAULT_ROLE = "lamina-function"
_LAMBDA_TRUST = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
    '"Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
)


def ensure_default_role(iam: Any) -> None:
    """Without --role, functions run as `lamina-function`: a role that Lambda may assume
    and that may write logs (AWSLambdaBasicExecutionRole), made on first use."""
    try:
        iam.create_role(
            RoleName=DEFAULT_ROLE,
            AssumeRolePolicyDocument=_LAMBDA_TRUST,
            Description="Default execution role for functions deployed with `lamina deploy`.",
        )
    except iam.exceptions.EntityAlreadyExistsException:
        return
    iam.attach_role_policy(
        RoleName=DEFAULT_ROLE,
        PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    )


def deploy_function(
    client: Any, progress: Progress, function: dict[str, Any], zip_file: bytes, default_role: str
) -> dict[str, Any]:
    """Create the function, or update its code then its configuration; wait; describe it.

    `default_role` is used only to create: an update keeps the function's role unless
    `function` names one.
    """
    name = function["FunctionName"]
    try:
        client.get_function_configuration(FunctionName=name)
        exists = True
    except Exception as exc:
        if not _is_missing(exc):
            raise
        exists = False
    if not exists:
        task = _step(progress, f"Creating {name}")
        client.create_function(
            **{"Role": default_role, **function}, Code={"ZipFile": zip_file}, PackageType="Zip"
        )
        progress.update(task, description=f"Waiting for {name} to become Active")
        client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=WAIT)
        _done(progress, task, f"Created {name}")
    else:
        task = _step(progress, f"Updating the code of {name}")
        client.update_function_code(FunctionName=name, ZipFile=zip_file)
        client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
        progress.update(task, description=f"Updating the configuration of {name}")
        client.update_function_configuration(**function)
        client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
        _done(progress, task, f"Updated {name}")
    return dict(client.get_function_configuration(FunctionName=name))


def runtime_interpreter(endpoint: str, runtime: str) -> str | None:
    """The server's interpreter for `runtime`, when it is on this machine and has pip.

    Only asked for when the runtime is another Python than the CLI's: installing with
    the very interpreter the function runs under gets compiled packages right too.
    """
    if not needs_other_python(runtime):
        return None
    try:
        path = fetch_runtimes(endpoint).get(runtime)
    except (httpx.HTTPError, ValueError):
        return None
    return path if path and usable_pip(path) else None


def _package(progress: Progress, directory: Path, runtime: str, interpreter: str | None) -> bytes:
    """Build the zip, showing pip's progress line by line, then the files packaged."""
    has_requirements = (directory / "requirements.txt").is_file()
    pip = _step(progress, "Installing requirements") if has_requirements else None
    zipping: list[TaskID] = []
    count = 0

    def show_pip(line: str) -> None:
        if pip is not None and line.strip():
            progress.update(pip, description=f"Installing requirements: {line.strip()[:70]}")

    def show_file(name: str) -> None:
        nonlocal count
        if not zipping:
            if pip is not None:
                _done(progress, pip, "Installed requirements")
            zipping.append(_step(progress, "Packaging"))
        count += 1
        progress.update(zipping[0], description=f"Packaging ({count} files)")

    zip_file = build_package(
        directory, runtime, on_pip_line=show_pip, on_file=show_file, interpreter=interpreter
    )
    if not zipping:  # an empty folder
        zipping.append(_step(progress, "Packaging"))
    _done(
        progress,
        zipping[0],
        f"Packaged {count} file{'' if count == 1 else 's'} ({len(zip_file) / 1024:.1f} KiB)",
    )
    return zip_file


def deploy(
    directory: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, dir_okay=True, help="The function's folder."),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Function name.")],
    runtime: Annotated[str, typer.Option(help="Runtime, e.g. python3.12 or provided.al2023.")],
    handler: Annotated[str, typer.Option(help="Handler, e.g. app.handler.")],
    memory: Annotated[int | None, typer.Option(help="Memory size in MB.")] = None,
    timeout: Annotated[int | None, typer.Option(help="Timeout in seconds.")] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="Environment variable KEY=VALUE.")
    ] = None,
    role: Annotated[str | None, typer.Option(help="Execution role ARN.")] = None,
) -> None:
    """Package DIR and create or update the function; options left out keep their value."""
    variables = parse_env(env or [])
    with reporting_errors():
        connection = Connection.from_env(os.environ)
    function: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": runtime,
        "Handler": handler,
    }
    optional = {"MemorySize": memory, "Timeout": timeout, "Role": role}
    function.update({k: v for k, v in optional.items() if v is not None})
    if variables:
        function["Environment"] = {"Variables": variables}
    console = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with reporting_errors(connection.endpoint), Progress(*columns, console=console) as progress:
        try:
            interpreter = None
            if (directory / "requirements.txt").is_file():
                interpreter = runtime_interpreter(connection.endpoint, runtime)
            zip_file = _package(progress, directory, runtime, interpreter)
        except RuntimeError as exc:
            progress.stop()
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        client = connection.client("lambda")
        default_role = f"arn:aws:iam::{connection.account_id}:role/{DEFAULT_ROLE}"
        if role is None:
            ensure_default_role(connection.client("iam"))
        config = deploy_function(client, progress, function, zip_file, default_role)
    typer.echo(f"FunctionArn: {config.get('FunctionArn')}")
    typer.echo(f"Version: {config.get('Version')}")
    typer.echo(f"State: {config.get('State')}")
    if config.get("LastUpdateStatus"):
        typer.echo(f"LastUpdateStatus: {config.get('LastUpdateStatus')}")
