"""`lamina serve`: load the config file, print the endpoint and credentials, run uvicorn."""

from __future__ import annotations

import dataclasses
import sys

import uvicorn
import uvloop
import yaml

from lamina.settings import Settings


def load_config(settings: Settings) -> Settings:
    if settings.config_file is None:
        return settings
    try:
        raw = yaml.safe_load(settings.config_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        sys.exit(f"lamina: cannot read config {settings.config_file}: {exc}")
    if not isinstance(raw, dict):
        sys.exit(f"lamina: config {settings.config_file} must be a YAML mapping")
    server = raw.get("server") or {}
    overrides = {k: v for k, v in server.items() if k in {"account_id", "region"}}
    return dataclasses.replace(settings, config=raw, **overrides)


def run_server(settings: Settings) -> None:
    from lamina.app import build_app
    from lamina.protocols.http_direct import direct_protocol

    settings = load_config(settings)
    sockets = None
    if settings.workers > 1:
        # Bound here, before the app starts its workers: they bind the same port.
        from lamina.serving.worker import listening_socket, primary_socket, unix_socket

        api = listening_socket(settings.host, settings.port)
        settings = dataclasses.replace(settings, port=api.getsockname()[1])
        sockets = [api, unix_socket(primary_socket(settings.data_dir.resolve()))]
    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # uvicorn's httptools protocol, with the AWS API served without ASGI.
        http=direct_protocol(app),
        lifespan="on",
        access_log=False,
        log_level="warning",
        # No X-Forwarded-For rewriting: lamina is not behind a trusted proxy, and a
        # local process must not choose the source IP that IAM conditions see
        # (aws:SourceIp). One middleware less on every request, too.
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # uvicorn picks uvloop only in uvicorn.run(); serving ourselves, we start it here.
    uvloop.run(server.serve(sockets=sockets))
