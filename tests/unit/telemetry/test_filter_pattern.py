"""CloudWatch filter pattern syntax: terms, phrases, exclusion, OR, regex, JSON."""

from __future__ import annotations

import pytest

from lamina.errors import ClientError
from lamina.telemetry.filter_pattern import parse_filter_pattern


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ("", "anything", True),
        ("ERROR", "[ERROR] boom", True),
        ("ERROR", "error boom", False),  # case-sensitive
        ("ERROR Exception", "ERROR ValueError", False),
        ("ERROR Exception", "Exception ERROR", True),
        ('"Task timed out"', "2026 Task timed out after 3.00 seconds", True),
        ('"Task timed out"', "Task has timed out", False),
        ("ERROR -Healthcheck", "ERROR in Healthcheck", False),
        ("ERROR -Healthcheck", "ERROR in handler", True),
        ("?ERROR ?WARN", "WARN low disk", True),
        ("?ERROR ?WARN", "INFO ok", False),
        ('-"is fine"', "all is fine", False),
        ("%time[sd]? out%", "timed out", True),
        ("%^START%", "END RequestId", False),
    ],
)
def test_text_patterns(pattern: str, message: str, expected: bool) -> None:
    assert parse_filter_pattern(pattern).matches(message) is expected


def test_required_terms_feed_the_sql_prefilter() -> None:
    assert parse_filter_pattern('ERROR ?a -b "x y"').required_terms == ("ERROR", "x y")


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ('{ $.level = "ERROR" }', '{"level": "ERROR"}', True),
        ('{ $.level = "ERROR" }', '{"level": "INFO"}', False),
        ("{ $.level = ERR* }", '{"level": "ERROR"}', True),
        ("{ $.latency > 100 }", '{"latency": 150}', True),
        ("{ $.latency > 100 }", '{"latency": "150"}', False),
        ("{ $.status = 200 }", '{"status": 200}', True),
        ("{ $.status != 200 }", '{"status": 500}', True),
        ("{ $.status != 200 }", "{}", False),
        ("{ $.a.b[1] = x }", '{"a": {"b": [0, "x"]}}', True),
        ("{ $.ok IS TRUE }", '{"ok": true}', True),
        ("{ $.gone IS NULL }", '{"gone": null}', True),
        ("{ $.gone NOT EXISTS }", '{"here": 1}', True),
        ('{ ($.a = 1 || $.b = 2) && $.c = "z" }', '{"b": 2, "c": "z"}', True),
        ('{ ($.a = 1 || $.b = 2) && $.c = "z" }', '{"b": 2, "c": "y"}', False),
        ('{ $.level = "ERROR" }', "not json", False),
    ],
)
def test_json_patterns(pattern: str, message: str, expected: bool) -> None:
    assert parse_filter_pattern(pattern).matches(message) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        '"unclosed',
        "{ $.a = }",
        "{ $.a > abc }",
        "{ $.a = 1",
        "[ip, size > abc]",
        "%(%",
        "{ $.a IS MAYBE }",
    ],
)
def test_bad_patterns_are_invalid_parameter(pattern: str) -> None:
    with pytest.raises(ClientError) as refused:
        parse_filter_pattern(pattern)
    assert refused.value.code == "InvalidParameterException"


ACCESS_LOG = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[ip, id, user, timestamp, request, status_code, size]", True),
        ("[ip, id, user, timestamp, request, status_code]", False),  # field count differs
        ("[ip, id, user, timestamp, request, status_code=404, size]", True),
        ("[ip, id, user, timestamp, request, status_code=4*, size]", True),
        ("[ip, id, user, timestamp, request, status_code=5*, size]", False),
        ("[..., status_code=5* || status_code=4*, size>1000]", True),
        ("[..., size<1000]", False),
        ("[ip=127.*, ...]", True),
        ('[ip, id, user=frank, timestamp, request="GET /index.html HTTP/1.0", ...]', True),
        ("[ip, id, user!=frank, ...]", False),
        ("[..., status_code>=400 && status_code<500, size]", True),
    ],
)
def test_space_delimited_patterns(pattern: str, expected: bool) -> None:
    assert parse_filter_pattern(pattern).matches(ACCESS_LOG) is expected
