"""The `Condition` element: operators, `...IfExists`, `ForAnyValue:`/`ForAllValues:`.

Semantics as AWS documents them ("IAM JSON policy elements: Condition operators" and
"Multivalued context keys"):
- several operators in one block, and several keys under one operator: all must hold;
- several values for one key: any may match (for negated operators: none may);
- a key missing from the request: a positive operator is false, a negated one
  (`StringNotEquals`, `ArnNotLike`, `NotIpAddress`, ...) is true, `...IfExists` is true;
- `ForAllValues:` is true when every request value matches (and when there are none);
  `ForAnyValue:` when at least one does (false when there are none);
- `Null` tests presence: `"true"` means the key must be absent.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lamina.iam.errors import MalformedPolicyDocument
from lamina.iam.patterns import Facts, Pattern, substitute

# (request value, policy value as its operator prepared it) -> do they match
Match = Callable[[str, Any], bool]
# policy value (after variables) -> the form its operator compares; None if unusable
Prepare = Callable[[str], Any]


def _same(text: str) -> str:
    return text


def _lower(text: str) -> str:
    return text.lower()


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> float | None:
    """ISO 8601 (date or date-time) or epoch seconds, as AWS accepts both."""
    number = _number(text)
    if number is not None:
        return number
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _compare(parse: Callable[[str], float | None], test: Callable[[float, float], bool]) -> Match:
    def match(actual: str, expected: float | None) -> bool:
        value = parse(actual)
        return value is not None and expected is not None and test(value, expected)

    return match


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _in_network(actual: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network | None) -> bool:
    if network is None:
        return False
    try:
        return ipaddress.ip_address(actual) in network
    except ValueError:
        return False


def _binary(text: str) -> bytes | None:
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return None


def _binary_equals(actual: str, expected: bytes | None) -> bool:
    return expected is not None and _binary(actual) == expected


@dataclass(frozen=True, slots=True)
class _Operator:
    match: Match | None  # None: the *Like and Arn* operators, which match by `Pattern`
    negated: bool = False
    prepare: Prepare = _same
    arn: bool = False  # patterns compare ARNs part by part


def _operators() -> dict[str, _Operator]:
    """Base operator name (no qualifier, no IfExists) -> how it matches."""

    def equal(a: str, e: str) -> bool:
        return a == e

    def equal_ci(a: str, e: str) -> bool:
        return a.lower() == e

    table = {
        "StringEquals": _Operator(equal, False),
        "StringNotEquals": _Operator(equal, True),
        "StringEqualsIgnoreCase": _Operator(equal_ci, False, _lower),
        "StringNotEqualsIgnoreCase": _Operator(equal_ci, True, _lower),
        "StringLike": _Operator(None, False),
        "StringNotLike": _Operator(None, True),
        "NumericEquals": _Operator(_compare(_number, lambda a, e: a == e), False, _number),
        "NumericNotEquals": _Operator(_compare(_number, lambda a, e: a == e), True, _number),
        "NumericLessThan": _Operator(_compare(_number, lambda a, e: a < e), False, _number),
        "NumericLessThanEquals": _Operator(_compare(_number, lambda a, e: a <= e), False, _number),
        "NumericGreaterThan": _Operator(_compare(_number, lambda a, e: a > e), False, _number),
        "NumericGreaterThanEquals": _Operator(
            _compare(_number, lambda a, e: a >= e), False, _number
        ),
        "DateEquals": _Operator(_compare(_date, lambda a, e: a == e), False, _date),
        "DateNotEquals": _Operator(_compare(_date, lambda a, e: a == e), True, _date),
        "DateLessThan": _Operator(_compare(_date, lambda a, e: a < e), False, _date),
        "DateLessThanEquals": _Operator(_compare(_date, lambda a, e: a <= e), False, _date),
        "DateGreaterThan": _Operator(_compare(_date, lambda a, e: a > e), False, _date),
        "DateGreaterThanEquals": _Operator(_compare(_date, lambda a, e: a >= e), False, _date),
        "Bool": _Operator(equal_ci, False, _lower),
        "BinaryEquals": _Operator(_binary_equals, False, _binary),
        "IpAddress": _Operator(_in_network, False, _network),
        "NotIpAddress": _Operator(_in_network, True, _network),
        # ArnEquals takes wildcards too: AWS documents both as per-part glob matches.
        "ArnEquals": _Operator(None, False, arn=True),
        "ArnLike": _Operator(None, False, arn=True),
        "ArnNotEquals": _Operator(None, True, arn=True),
        "ArnNotLike": _Operator(None, True, arn=True),
    }
    return table


@dataclass(frozen=True, slots=True)
class Condition:
    """One key under one operator, e.g. `"StringLike": {"s3:prefix": ["home/*"]}`."""

    operator: str  # as written: "ForAnyValue:StringLikeIfExists"
    key: str  # lower-cased: condition keys are case-insensitive
    values: tuple[str, ...]
    match: Match | None  # None for Null and for pattern operators
    negated: bool
    if_exists: bool
    qualifier: str | None  # "ForAnyValue" | "ForAllValues" | None
    variables: bool  # policy variables allowed (policy Version 2012-10-17)
    patterns: tuple[Pattern, ...] = ()  # for *Like / Arn* operators
    prepare: Prepare = _same
    prepared: tuple[Any, ...] | None = None  # the values prepared, when no variables

    def holds(self, facts: Facts) -> bool:
        actual = facts.get(self.key)
        if self.match is None and not self.patterns:  # Null: "true" means absent
            absent = actual is None or len(actual) == 0
            return any((v.lower() == "true") == absent for v in self.values)
        if actual is None or (self.qualifier is not None and not actual):
            if self.if_exists or self.qualifier == "ForAllValues":
                return True
            if self.qualifier == "ForAnyValue":
                return False
            return self.negated
        negated = self.negated
        if self.patterns:
            tests = [p.matcher(facts) for p in self.patterns]

            def hit(value: str) -> bool:
                return any(test(value) for test in tests)

        else:
            expected, match = self._expected(facts), self.match
            assert match is not None

            def hit(value: str) -> bool:
                return any(match(value, e) for e in expected)

        def one(value: str) -> bool:
            return not hit(value) if negated else hit(value)

        if self.qualifier == "ForAllValues":
            return all(one(v) for v in actual)
        if self.qualifier == "ForAnyValue" or not negated:
            return any(one(v) for v in actual)
        return all(one(v) for v in actual)  # negated: no request value may match

    def _expected(self, facts: Facts) -> tuple[Any, ...]:
        if self.prepared is not None:
            return self.prepared
        out: list[Any] = []
        for value in self.values:
            resolved = substitute(value, facts)
            if resolved is not None:
                out.append(self.prepare(resolved))
        return tuple(out)


class ConditionCompiler:
    """Turns a statement's `Condition` block into `Condition`s, checking operators."""

    def __init__(self) -> None:
        self._operators = _operators()

    def compile(self, block: object, *, variables: bool) -> tuple[Condition, ...]:
        if not isinstance(block, dict):
            raise MalformedPolicyDocument("Syntax errors in policy.")
        out: list[Condition] = []
        for operator, keys in block.items():
            if not isinstance(keys, dict):
                raise MalformedPolicyDocument("Syntax errors in policy.")
            for key, raw in keys.items():
                values = raw if isinstance(raw, list) else [raw]
                out.append(self._one(str(operator), str(key), values, variables))
        return tuple(out)

    def _one(self, operator: str, key: str, raw: list[object], variables: bool) -> Condition:
        qualifier: str | None = None
        base = operator
        prefix, sep, rest = operator.partition(":")
        if sep:
            if prefix not in ("ForAnyValue", "ForAllValues"):
                raise MalformedPolicyDocument(f"Invalid Condition type : {operator}.")
            qualifier, base = prefix, rest
        if_exists = base.endswith("IfExists") and base != "IfExists"
        base = base.removesuffix("IfExists") if if_exists else base
        values = tuple(_text(v) for v in raw)
        if not values:
            raise MalformedPolicyDocument(f"Condition {operator} for key {key} has no values.")
        if base == "Null":
            return Condition(operator, key.lower(), values, None, False, False, None, False)
        entry = self._operators.get(base)
        if entry is None:
            raise MalformedPolicyDocument(f"Invalid Condition type : {operator}.")
        patterns: tuple[Pattern, ...] = ()
        if entry.match is None:
            patterns = tuple(Pattern.of(v, arn=entry.arn, variables=variables) for v in values)
        prepared = None
        if not (variables and any("${" in v for v in values)):
            prepared = tuple(entry.prepare(v) for v in values)
        return Condition(
            operator,
            key.lower(),
            values,
            entry.match,
            entry.negated,
            if_exists,
            qualifier,
            variables,
            patterns,
            entry.prepare,
            prepared,
        )


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise MalformedPolicyDocument("Syntax errors in policy.")
