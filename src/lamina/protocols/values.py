"""Scalar values on the wire: timestamps, blobs, numbers and booleans as text.

Services see `datetime` (UTC, aware), `bytes`, `int`, `float`, `bool`; every protocol
spells them differently on the wire (epoch seconds in JSON, ISO 8601 in query strings
and XML, RFC 822 in headers, base64 for blobs). These helpers are the one place that
knows the spellings, matching what botocore writes and reads.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

# The text forms of non-finite floats that botocore sends and accepts.
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_utc(value: datetime) -> datetime:
    # A naive datetime from a service means UTC; we never use the host's local zone.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: Any, fmt: str) -> Any:
    """Spell a timestamp as `fmt` ("unixtimestamp", "iso8601" or "rfc822").

    Numbers and strings pass through, so a service may hand back epoch seconds
    or an already formatted string without being second-guessed.
    """
    if not isinstance(value, datetime):
        return value
    value = to_utc(value)
    if fmt == "unixtimestamp":
        # Integral seconds stay ints so the JSON reads `1700000000`, as AWS writes it.
        if value.microsecond:
            return round(value.timestamp(), 3)
        return int(value.timestamp())
    if fmt == "rfc822":
        return formatdate(value.timestamp(), usegmt=True)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: Any) -> datetime:
    """Read any of the three spellings (clients are not consistent); raise ValueError."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    text = value.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        pass
    try:
        return to_utc(parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not a timestamp: {text!r}") from exc


def encode_blob(value: Any) -> str:
    if isinstance(value, str):
        value = value.encode()
    return base64.b64encode(bytes(value)).decode("ascii")


def decode_blob(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc


def format_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def parse_float(value: Any) -> float:
    if isinstance(value, str):
        special = _SPECIAL_FLOATS.get(value)
        if special is not None:
            return special
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number")
    return float(value)


def parse_boolean_text(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_text(type_name: str, text: str) -> Any:
    """A scalar from text (URI label, query string, header, form field); ValueError if bad."""
    if type_name in ("string", "character"):
        return text
    if type_name in ("integer", "long", "short", "byte", "bigInteger"):
        return int(text)
    if type_name in ("float", "double", "bigDecimal"):
        return parse_float(text)
    if type_name == "boolean":
        return parse_boolean_text(text)
    if type_name == "timestamp":
        return parse_timestamp(text)
    if type_name == "blob":
        return decode_blob(text)
    return text


def format_text(type_name: str, value: Any, timestamp_format: str) -> str:
    """A scalar as text (header, query string, XML element)."""
    if type_name == "boolean" or isinstance(value, bool):
        return "true" if value else "false"
    if type_name == "timestamp":
        return str(format_timestamp(value, timestamp_format))
    if type_name == "blob" and not isinstance(value, str):
        return encode_blob(value)
    if type_name in ("float", "double") and isinstance(value, float):
        return str(format_float(value))
    return str(value)
