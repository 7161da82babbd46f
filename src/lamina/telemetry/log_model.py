"""Values of the log store (groups, streams, events), its refusals, and its page tokens.

Refusals carry CloudWatch Logs' codes: every one of them is HTTP 400 in that API,
including ResourceNotFoundException (Lambda's is 404, CloudWatch Logs' is not).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from lamina.errors import ClientError

GROUP_NAME_PATTERN = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
# Stream names may hold anything but ':' and '*' (those delimit ARNs and wildcards).
STREAM_NAME_PATTERN = re.compile(r"[^:*]{1,512}")


@dataclass(frozen=True, slots=True)
class LogGroup:
    name: str
    created_ms: int
    retention_days: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class LogStream:
    name: str
    created_ms: int
    first_event_ms: int | None
    last_event_ms: int | None
    last_ingestion_ms: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class LogEvent:
    stream: str
    timestamp_ms: int
    message: str
    ingestion_ms: int
    row_id: int

    @property
    def event_id(self) -> str:
        # CloudWatch event ids are 56-digit strings; the row id is unique and stable,
        # which is all a reader (e.g. `aws logs tail --follow` de-duplication) needs.
        return f"{self.row_id:056d}"


def invalid_parameter(message: str) -> ClientError:
    return ClientError(message, code="InvalidParameterException", status=400)


def group_not_found() -> ClientError:
    return ClientError(
        "The specified log group does not exist.", code="ResourceNotFoundException", status=400
    )


def stream_not_found() -> ClientError:
    return ClientError(
        "The specified log stream does not exist.", code="ResourceNotFoundException", status=400
    )


def already_exists(what: str) -> ClientError:
    return ClientError(
        f"The specified {what} already exists", code="ResourceAlreadyExistsException", status=400
    )


def check_group_name(name: str) -> None:
    if not GROUP_NAME_PATTERN.fullmatch(name):
        raise invalid_parameter(
            f"Invalid log group name {name!r}: use 1-512 characters from [.-_/#A-Za-z0-9]."
        )


def check_stream_name(name: str) -> None:
    if not STREAM_NAME_PATTERN.fullmatch(name):
        raise invalid_parameter(
            f"Invalid log stream name {name!r}: use 1-512 characters, without ':' or '*'."
        )


# Page tokens are opaque to clients: base64 of a small JSON list whose first item says
# which kind of page it continues, so a token from one listing is refused by another.
TokenValue = str | int | None


def encode_token(kind: str, *parts: TokenValue) -> str:
    raw = orjson.dumps([kind, *parts])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(
    token: str, kind: str, types: Sequence[type | tuple[type, ...]]
) -> list[TokenValue]:
    """The parts of `token`, checked to be a `kind` token with parts of `types`."""
    try:
        padded = token + "=" * (-len(token) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, orjson.JSONDecodeError, ValueError) as exc:
        raise invalid_parameter("The specified nextToken is invalid.") from exc
    if (
        not isinstance(value, list)
        or len(value) != len(types) + 1
        or value[0] != kind
        or not all(isinstance(v, t) for v, t in zip(value[1:], types, strict=True))
    ):
        raise invalid_parameter("The specified nextToken is invalid.")
    return list(value[1:])
