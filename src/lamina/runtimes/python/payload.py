"""Events in, results out: JSON as awslambdaric's marshaller reads and writes it.

awslambdaric encodes with simplejson and writes a `Decimal` as its exact text
(`Decimal("1.10")` -> `1.10`, a NaN as `NaN`). The standard library encoder has no
raw-JSON escape hatch, so a Decimal is emitted as a quoted string between two
per-process random markers and the quotes and markers are removed afterwards;
nothing a user can put in a string contains the marker, and the extra pass runs
only when a Decimal was seen.
"""

from __future__ import annotations

import json
import os
import sys

from .faults import FaultException

# awslambdaric writes non-ASCII characters as themselves from python3.12 on, and
# as \u escapes before.
_RAW_UNICODE_RUNTIMES = frozenset(f"AWS_Lambda_python3.{minor}" for minor in (12, 13, 14, 15))


class Marshaller:
    __slots__ = ("_decimal_seen", "_encoder", "_marker")

    def __init__(self, execution_env: str | None) -> None:
        self._marker = "lamina-decimal-" + os.urandom(12).hex()
        self._decimal_seen = False
        self._encoder = json.JSONEncoder(
            ensure_ascii=execution_env not in _RAW_UNICODE_RUNTIMES,
            allow_nan=True,
            default=self._default,
        )

    def unmarshal(self, body: bytes, content_type: str | None) -> object:
        """The event. Bodies that say they are not JSON reach the handler as bytes."""
        if content_type is not None and content_type != "application/json":
            return body
        try:
            return json.loads(body)
        except Exception as exc:
            raise FaultException(
                FaultException.UNMARSHAL_ERROR, f"Unable to unmarshal input: {exc}"
            ) from None

    def marshal(self, result: object) -> tuple[bytes, str]:
        """The response body and its content type; bytes pass through untouched."""
        if isinstance(result, bytes):
            return result, "application/unknown"
        try:
            return self.to_json(result).encode(), "application/json"
        except Exception as exc:
            raise FaultException(
                FaultException.MARSHAL_ERROR, f"Unable to marshal response: {exc}"
            ) from None

    def to_json(self, value: object) -> str:
        self._decimal_seen = False
        text = self._encoder.encode(value)
        if self._decimal_seen:
            marker = self._marker
            text = text.replace('"' + marker, "").replace(marker + '"', "")
        return text

    def _default(self, value: object) -> object:
        decimal = sys.modules.get("decimal")  # a Decimal exists only if its module does
        if decimal is not None and isinstance(value, decimal.Decimal):
            if value.is_nan():
                return float("nan")
            self._decimal_seen = True
            return f"{self._marker}{value}{self._marker}"
        raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")
