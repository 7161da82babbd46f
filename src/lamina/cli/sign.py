"""`lamina sign ZIP --profile NAME`: sign a code package with a signing profile.

The package never leaves this machine: the CLI computes the digest of its manifest
(signing/package_signature.py), the server signs that digest with the profile's
private key (Signer SignPayload; the key never leaves the server), and the CLI
writes the returned envelope into the zip as `.lamina-signature.json`. The result
deploys with any client: CreateFunction / UpdateFunctionCode take it unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from lamina.cli.connection import CliError, Connection, reporting_errors
from lamina.signing.package_signature import (
    PAYLOAD_FORMAT,
    Envelope,
    MalformedSignature,
    embed,
    read_package,
)


def sign_package(client: Any, data: bytes, profile: str) -> tuple[bytes, Envelope]:
    """(the signed package, its envelope), signed by `profile` through `client` (signer)."""
    try:
        digest = read_package(data).digest
    except MalformedSignature as exc:
        raise CliError(f"not a readable zip: {exc}") from None
    answer = client.sign_payload(profileName=profile, payload=digest, payloadFormat=PAYLOAD_FORMAT)
    envelope = Envelope.decode(answer["signature"])
    return embed(data, envelope), envelope


def sign(
    package: Annotated[Path, typer.Argument(help="The zip to sign.", exists=True, dir_okay=False)],
    profile: Annotated[str, typer.Option("--profile", help="Signing profile name.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the signed zip (default: in place)."),
    ] = None,
) -> None:
    """Sign a code package with a signing profile (the key stays on the server)."""
    with reporting_errors():
        connection = Connection.from_env(os.environ)
        signed, envelope = sign_package(connection.client("signer"), package.read_bytes(), profile)
        target = out or package
        target.write_bytes(signed)
    statement = envelope.statement
    typer.echo(f"signed {target} with {statement.profile_version_arn} (job {statement.job_id})")
