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


# A compiled pattern: regex text, or a `${...}` expression to fill in per request.
Piece = tuple[bool, str]  # (is_variable, regex text or variable expression)


def _pieces(pattern: str, variables: bool, *, arn: bool) -> list[Piece]:
    """Split out policy variables (when on) and turn the glob text around them into
    regex text; which ARN part a wildcard is in depends only on the glob text."""
    parts: list[Piece] = []
    pos = 0
    if variables:
        for match in _VARIABLE.finditer(pattern):
            parts += ((False, pattern[pos : match.start()]), (True, match.group(1)))
            pos = match.end()
    parts.append((False, pattern[pos:]))
    colons = sum(text.count(":") for is_variable, text in parts if not is_variable)
    return _globs_to_regex(parts, segmented=arn and colons >= _ARN_PARTS - 1)


def _globs_to_regex(parts: list[Piece], *, segmented: bool) -> list[Piece]:
    out: list[Piece] = []
    colons = 0
    for is_variable, text in parts:
        if is_variable:
            out.append((True, text))
            continue
        regex: list[str] = []
        for char in text:
            inside_part = segmented and colons < _ARN_PARTS - 1
            if char == "*":
                regex.append("[^:]*" if inside_part else ".*")
            elif char == "?":
                regex.append("[^:]" if inside_part else ".")
            else:
                colons += char == ":"
                regex.append(re.escape(char))
        out.append((False, "".join(regex)))
    return out


def glob_regex(pattern: str, facts: Facts | None = None, *, arn: bool = False) -> str | None:
    """`pattern` as an anchored regex; None when a policy variable has no value.

    `facts` is None where policy variables are off (policy Version 2008-10-17, actions).
    """
    return _fill(_pieces(pattern, facts is not None, arn=arn), facts or {})


def _fill(pieces: list[Piece] | tuple[Piece, ...], facts: Facts) -> str | None:
    out: list[str] = []
    for is_variable, text in pieces:
        if not is_variable:
            out.append(text)
            continue
        value = resolve_variable(text, facts)
        if value is None:
            return None
        out.append(re.escape(value))  # a variable's value is matched literally
    return "".join(out)


def compile_glob(pattern: str, *, ignore_case: bool = False, arn: bool = False) -> re.Pattern[str]:
    """A pattern without policy variables, compiled once when the policy is parsed."""
    regex = glob_regex(pattern, arn=arn)
    assert regex is not None  # no facts, so no variables to leave unresolved
    flags = (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL
    return re.compile(regex, flags)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A Resource/NotResource (or ArnLike/StringLike) pattern: compiled once when it
    has no policy variables; otherwise its regex pieces are ready and each request
    only fills in (escaped) variable values."""

    text: str
    compiled: re.Pattern[str] | None
    pieces: tuple[Piece, ...]

    @classmethod
    def of(cls, text: str, *, arn: bool, variables: bool) -> Pattern:
        if variables and "${" in text:
            return cls(text, None, tuple(_pieces(text, True, arn=arn)))
        return cls(text, compile_glob(text, arn=arn), ())

    def matcher(self, facts: Facts) -> Callable[[str], bool]:
        """A test for values of this request; matches nothing if a variable is unset."""
        if self.compiled is not None:
            return _fullmatch(self.compiled)
        regex = _fill(self.pieces, facts)
        if regex is None:
            return _nothing
        # re caches compiled expressions, and a policy's fills repeat per principal.
        return _fullmatch(re.compile(regex, re.DOTALL))

    def matches(self, value: str, facts: Facts) -> bool:
        return self.matcher(facts)(value)


def _fullmatch(compiled: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: compiled.fullmatch(value) is not None


def _nothing(_value: str) -> bool:
    return False
