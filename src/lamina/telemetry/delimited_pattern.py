"""Space-delimited filter patterns: `[ip, user, ..., status=4* || status=5*, size>1000]`.

A message is split into fields at whitespace, with text in "double quotes" or
[brackets] kept as one field (as in web server access logs). The pattern names each
field in order, optionally with conditions; `...` stands for any number of fields.
Without `...` the message must have exactly as many fields as the pattern.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from lamina.telemetry.log_model import invalid_parameter

_FIELD = re.compile(r'"([^"]*)"|\[([^\]]*)\]|(\S+)')
_CONDITION = re.compile(r"\s*([\w.-]+)\s*(?:(!=|>=|<=|=|>|<)\s*(\"[^\"]*\"|[^\s&|]+))?\s*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_ORDER: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}

FieldTest = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class _Ellipsis:
    pass


def message_fields(message: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None) for m in _FIELD.finditer(message)]


def _condition(text: str, pattern: str) -> FieldTest:
    found = _CONDITION.fullmatch(text)
    if found is None:
        raise invalid_parameter(f"Invalid filter pattern {pattern!r}: cannot read {text!r}.")
    _name, op, value = found.groups()
    if op is None:
        return lambda _field: True
    if op in _ORDER:
        if not _NUMBER.fullmatch(value):
            raise invalid_parameter(f"Invalid filter pattern {pattern!r}: {op} needs a number.")
        compare, number = _ORDER[op], float(value)
        return lambda field: _NUMBER.fullmatch(field) is not None and compare(float(field), number)
    equal = _equality(value.strip('"'))
    return equal if op == "=" else lambda field: not equal(field)


def _equality(value: str) -> FieldTest:
    if _NUMBER.fullmatch(value):
        number = float(value)
        return lambda field: _NUMBER.fullmatch(field) is not None and float(field) == number
    wildcard = re.compile(".*".join(re.escape(part) for part in value.split("*")))
    return lambda field: wildcard.fullmatch(field) is not None


def _field_test(spec: str, pattern: str) -> FieldTest | _Ellipsis:
    if spec.strip() == "...":
        return _Ellipsis()
    alternatives = [
        [_condition(part, pattern) for part in branch.split("&&")] for branch in spec.split("||")
    ]
    return lambda field: any(all(test(field) for test in branch) for branch in alternatives)


def compile_delimited_pattern(body: str) -> Callable[[str], bool]:
    """The predicate of the pattern between `[` and `]`."""
    specs = [_field_test(spec, body) for spec in body.split(",")]

    def match(fields: list[str], at: int, spec_at: int) -> bool:
        if spec_at == len(specs):
            return at == len(fields)
        spec = specs[spec_at]
        if isinstance(spec, _Ellipsis):
            return any(match(fields, skip, spec_at + 1) for skip in range(at, len(fields) + 1))
        return at < len(fields) and spec(fields[at]) and match(fields, at + 1, spec_at + 1)

    return lambda message: match(message_fields(message), 0, 0)
