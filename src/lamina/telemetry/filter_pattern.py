"""CloudWatch Logs filter patterns, compiled to a predicate over an event's message.

Supported, as CloudWatch defines them (matching is case-sensitive):
- terms: `ERROR Exception` matches messages holding every term;
- quoted phrases: `"Task timed out"` is one term, spaces and punctuation included;
- exclusion: `ERROR -Healthcheck` drops messages holding the `-` term;
- OR: `?ERROR ?WARN` matches messages holding at least one `?` term;
- regular expressions: `%timed? out%`;
- JSON patterns: `{ $.level = "ERROR" && $.latency > 100 }` (see json_pattern.py);
- space-delimited patterns: `[ip, user, ..., status=5*]` (see delimited_pattern.py).
An empty pattern matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lamina.telemetry.delimited_pattern import compile_delimited_pattern
from lamina.telemetry.json_pattern import compile_json_pattern
from lamina.telemetry.log_model import invalid_parameter


@dataclass(frozen=True, slots=True)
class FilterPattern:
    matches: Callable[[str], bool]
    # Terms every match must contain: the store narrows its scan with them in SQL
    # before the exact test in `matches` (SQLite's LIKE folds case, so it over-selects,
    # never under-selects).
    required_terms: tuple[str, ...] = ()


def _match_all(_message: str) -> bool:
    return True


def parse_filter_pattern(text: str | None) -> FilterPattern:
    pattern = (text or "").strip()
    if not pattern:
        return FilterPattern(_match_all)
    if pattern.startswith("{"):
        if not pattern.endswith("}"):
            raise invalid_parameter(f"Invalid filter pattern {text!r}: unclosed '{{'.")
        return FilterPattern(compile_json_pattern(pattern[1:-1]))
    if pattern.startswith("[") and pattern.endswith("]"):
        return FilterPattern(compile_delimited_pattern(pattern[1:-1]))
    if len(pattern) > 1 and pattern.startswith("%") and pattern.endswith("%"):
        return FilterPattern(_compile_regex(pattern[1:-1]))
    return _compile_terms(pattern)


def _compile_regex(body: str) -> Callable[[str], bool]:
    try:
        regex = re.compile(body)
    except re.error as exc:
        raise invalid_parameter(f"Invalid filter pattern: bad regular expression: {exc}") from exc
    return lambda message: regex.search(message) is not None


def _compile_terms(pattern: str) -> FilterPattern:
    required: list[str] = []
    optional: list[str] = []
    excluded: list[str] = []
    for prefix, term in _tokenize(pattern):
        {"?": optional, "-": excluded}.get(prefix, required).append(term)

    def matches(message: str) -> bool:
        return (
            all(term in message for term in required)
            and (not optional or any(term in message for term in optional))
            and not any(term in message for term in excluded)
        )

    return FilterPattern(matches, tuple(required))


def _tokenize(pattern: str) -> list[tuple[str, str]]:
    """Split a term pattern into (prefix, term) pairs; prefix is '', '?' or '-'."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i].isspace():
            i += 1
            continue
        prefix = ""
        if pattern[i] in "?-" and i + 1 < n and not pattern[i + 1].isspace():
            prefix = pattern[i]
            i += 1
        if pattern[i] == '"':
            term, i = _quoted(pattern, i)
        else:
            start = i
            while i < n and not pattern[i].isspace():
                i += 1
            term = pattern[start:i]
        if term:
            tokens.append((prefix, term))
    return tokens


def _quoted(pattern: str, start: int) -> tuple[str, int]:
    """The phrase of the quote opening at `start` (backslash escapes) and the index after it."""
    chars: list[str] = []
    i = start + 1
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            chars.append(pattern[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(chars), i + 1
        chars.append(char)
        i += 1
    raise invalid_parameter(f"Invalid filter pattern {pattern!r}: unclosed quote.")
