"""`lamina logs NAME`: print a function's log events in time order; `--follow` keeps
polling for new ones until Ctrl-C, as `aws logs tail --follow` does."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from lamina.cli.connection import Connection, reporting_errors

_SINCE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Lambda's stream names are `YYYY/MM/DD/[version]<environment id>`.
_STREAM_VERSION = re.compile(r"/\[([^\]]+)\]")


def parse_since(text: str, now_s: float) -> int:
    """`10m`, `2h`, `1d`... before now, or an ISO 8601 time (UTC unless it says), in ms."""
    relative = _SINCE.fullmatch(text.strip())
    if relative:
        return int((now_s - int(relative[1]) * _UNIT_S[relative[2]]) * 1000)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"expected a duration like 10m, 2h, 1d or an ISO time, got {text!r}",
            param_hint="--since",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def format_event(event: dict[str, Any]) -> str:
    moment = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    # Lambda runtimes send a multi-line record (a traceback) as one event with '\r'
    # between its lines; a terminal would print those over each other.
    message = str(event["message"]).replace("\r\n", "\n").replace("\r", "\n")
    return f"{stamp} {message.rstrip(chr(10))}"


class LogTail:
    """Polls FilterLogEvents from a moving start time and yields each event once.

    Each poll starts at the newest timestamp already seen (events may still arrive
    with it), so the ids seen at that timestamp are remembered and skipped.
    """

    def __init__(
        self,
        client: Any,
        group: str,
        start_ms: int,
        versions: frozenset[str] | None,
        pattern: str | None = None,
    ) -> None:
        self._client = client
        self._pattern = pattern
        self._group = group
        self._start_ms = start_ms
        self._versions = versions
        self._seen: set[str] = set()

    def _wanted(self, event: dict[str, Any]) -> bool:
        if self._versions is None:
            return True
        version = _STREAM_VERSION.search(event.get("logStreamName", ""))
        return version is not None and version[1] in self._versions

    def _fetch(self) -> list[dict[str, Any]]:
        request: dict[str, Any] = {"logGroupName": self._group, "startTime": self._start_ms}
        if self._pattern:
            request["filterPattern"] = self._pattern
        events: list[dict[str, Any]] = []
        try:
            while True:
                page = self._client.filter_log_events(**request)
                events.extend(page.get("events", []))
                if not page.get("nextToken"):
                    return events
                request["nextToken"] = page["nextToken"]
        except Exception as exc:
            # The group appears with the function's first log line; until then, no logs.
            response = getattr(exc, "response", None) or {}
            if response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return events
            raise

    def poll(self) -> list[dict[str, Any]]:
        events = sorted(self._fetch(), key=lambda e: (e["timestamp"], e.get("eventId", "")))
        fresh = [e for e in events if e.get("eventId") not in self._seen]
        if events:
            newest = events[-1]["timestamp"]
            if newest > self._start_ms:
                self._start_ms, self._seen = newest, set()
            self._seen.update(e.get("eventId", "") for e in events if e["timestamp"] == newest)
        return [e for e in fresh if self._wanted(e)]


def qualifier_versions(client: Any, name: str, qualifier: str | None) -> frozenset[str] | None:
    """The versions whose logs a qualifier covers: itself, or an alias's version(s)."""
    if qualifier is None:
        return None
    if qualifier == "$LATEST" or qualifier.isdigit():
        return frozenset({qualifier})
    alias = client.get_alias(FunctionName=name, Name=qualifier)
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return frozenset({alias["FunctionVersion"], *weights})


def follow_events(
    tail: LogTail,
    follow: bool,
    interval_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    while True:
        for event in tail.poll():
            typer.echo(format_event(event))
        if not follow:
            return
        sleep(interval_s)


def logs(
    name: Annotated[str, typer.Argument(help="Function name.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = (
        False
    ),
    since: Annotated[
        str, typer.Option(help="How far back to start: 10m, 2h, 1d, or an ISO time.")
    ] = "10m",
    qualifier: Annotated[
        str | None, typer.Option(help="Only this version's (or alias's) logs.")
    ] = None,
    filter_pattern: Annotated[
        str | None,
        typer.Option("--filter", help='CloudWatch filter pattern, e.g. "ERROR -Healthcheck".'),
    ] = None,
) -> None:
    """Print the function's log events, oldest first."""
    start_ms = parse_since(since, time.time())
    with reporting_errors():
        connection = Connection.from_env(os.environ)
    with reporting_errors(connection.endpoint):
        lambda_client = connection.client("lambda")
        # A missing function is a 404 here rather than a silently empty log; the
        # answer also turns an ARN into the name the log group is named after.
        config = lambda_client.get_function_configuration(FunctionName=name)
        name = config.get("FunctionName") or name
        versions = qualifier_versions(lambda_client, name, qualifier)
        group = f"/aws/lambda/{name}"
        tail = LogTail(connection.client("logs"), group, start_ms, versions, filter_pattern)
        try:
            follow_events(tail, follow)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None
