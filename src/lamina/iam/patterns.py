"""Wildcards and policy variables, compiled to regular expressions.

IAM patterns use `*` (any run of characters) and `?` (one character). In an ARN
with all six colon-separated parts, a wildcard in one of the first five parts stays
inside that part (`arn:aws:lambda:*:123456789012:function:f` matches any region but
cannot swallow the account); the last part (the resource) may contain colons, so a
`*` there matches them too (`function:*` matches `function:f:prod`).

Policy variables (`${aws:username}`, `${aws:PrincipalTag/team, 'none'}`) are replaced
by the request's value for that key before matching; the value is matched literally,
so `${*}`, `${?}` and `${$}` are how a policy says a literal `*`, `?` or `$`.
A variable with no value and no default makes the element match nothing, as AWS does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Request facts: lower-cased condition key -> its values (one for single-valued keys).
Facts = Mapping[str, tuple[str, ...]]

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,\s]+)\s*,\s*'([^']*)'\s*$")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}
_ARN_PARTS = 6


def resolve_variable(expression: str, facts: Facts) -> str | None:
    """The text a `${...}` stands for, or None when it has no value."""
    if expression in _SPECIAL:
        return _SPECIAL[expression]
    default: str | None = None
    with_default = _DEFAULT.match(expression)
    key = expression.strip()
    if with_default:
        key, default = with_default.group(1), with_default.group(2)
    values = facts.get(key.lower())
    # A multi-valued key cannot stand in for one string.
    if values is not None and len(values) == 1:
        return values[0]
    return default


def substitute(text: str, facts: Facts) -> str | None:
    """`text` with its policy variables replaced; None when one has no value."""
    if "${" not in text:
        return text
    out: list[str] = []
    pos = 0
    for match in _VARIABLE.finditer(text):
        value = resolve_variable(match.group(1), facts)
        if value is None:
            return None
        out += (text[pos : match.start()], value)
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def _tokens(pattern: str, facts: Facts | None) -> list[tuple[bool, str]] | None:
    """(is_literal_value, text) pieces: glob text, or a variable's value to match as is."""
    if facts is None or "${" not in pattern:
        return [(False, pattern)]
    out: list[tuple[bool, str]] = []
    pos = 0
    for match in _VARIABLE.finditer(pattern):
        out.append((False, pattern[pos : match.start()]))
        value = resolve_variable(match.group(1), facts)
        if value is None:
            return None
        out.append((True, value))
        pos = match.end()
    out.append((False, pattern[pos:]))
    return out


def glob_regex(pattern: str, facts: Facts | None = None, *, arn: bool = False) -> str | None:
    """`pattern` as an anchored regex; None when a policy variable has no value.

    `facts` is None where policy variables are off (policy Version 2008-10-17, actions).
    """
    tokens = _tokens(pattern, facts)
    if tokens is None:
        return None
    segmented = arn and sum(text.count(":") for lit, text in tokens if not lit) >= _ARN_PARTS - 1
    out: list[str] = []
    colons = 0
    for literal, text in tokens:
        if literal:
            out.append(re.escape(text))
            continue
        for char in text:
            inside_part = segmented and colons < _ARN_PARTS - 1
            if char == "*":
                out.append("[^:]*" if inside_part else ".*")
            elif char == "?":
                out.append("[^:]" if inside_part else ".")
            else:
                if char == ":":
                    colons += 1
                out.append(re.escape(char))
    return "".join(out)


def compile_glob(pattern: str, *, ignore_case: bool = False, arn: bool = False) -> re.Pattern[str]:
    """A pattern without policy variables, compiled once when the policy is parsed."""
    regex = glob_regex(pattern, arn=arn)
    assert regex is not None  # no facts, so no variables to leave unresolved
    flags = (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL
    return re.compile(regex, flags)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A Resource/NotResource (or ArnLike/StringLike) pattern, compiled ahead when it
    has no policy variables, else per request."""

    text: str
    arn: bool
    variables: bool
    compiled: re.Pattern[str] | None

    @classmethod
    def of(cls, text: str, *, arn: bool, variables: bool) -> Pattern:
        dynamic = variables and "${" in text
        return cls(text, arn, dynamic, None if dynamic else compile_glob(text, arn=arn))

    def matcher(self, facts: Facts) -> Callable[[str], bool]:
        """A test for values of this request; matches nothing if a variable is unset."""
        if self.compiled is not None:
            return _fullmatch(self.compiled)
        regex = glob_regex(self.text, facts, arn=self.arn)
        if regex is None:
            return _nothing
        return _fullmatch(re.compile(regex, re.DOTALL))

    def matches(self, value: str, facts: Facts) -> bool:
        return self.matcher(facts)(value)


def _fullmatch(compiled: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: compiled.fullmatch(value) is not None


def _nothing(_value: str) -> bool:
    return False
