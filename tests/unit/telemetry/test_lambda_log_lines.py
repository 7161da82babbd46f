"""Lambda's log names and platform lines, spelled exactly as Lambda spells them."""

from __future__ import annotations

import re

from lamina.telemetry import lambda_log


def test_group_and_stream_names() -> None:
    assert lambda_log.log_group_name("fn") == "/aws/lambda/fn"
    name = lambda_log.log_stream_name("$LATEST", 1_800_000_000.0)
    assert re.fullmatch(r"2027/01/15/\[\$LATEST\][0-9a-f]{32}", name)
    assert lambda_log.log_stream_name("3", 0, "ab" * 16) == "1970/01/01/[3]" + "ab" * 16


def test_start_end_report_lines() -> None:
    assert lambda_log.start_line("r-1", "$LATEST") == "START RequestId: r-1 Version: $LATEST\n"
    assert lambda_log.end_line("r-1") == "END RequestId: r-1\n"
    warm = lambda_log.report_line("r-1", 15.742, 128, 56)
    assert warm == (
        "REPORT RequestId: r-1\tDuration: 15.74 ms\tBilled Duration: 16 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 56 MB\t\n"
    )
    cold = lambda_log.report_line("r-1", 0.2, 128, 56, init_duration_ms=133.756)
    assert "\tBilled Duration: 1 ms\t" in cold and cold.endswith("Init Duration: 133.76 ms\t\n")
    failed = lambda_log.report_line("r", 3000.0, 128, 60, status="timeout")
    assert failed.endswith("\tStatus: timeout\t\n")


def test_timeout_line() -> None:
    line = lambda_log.timeout_line("r-1", 3, 0.5)
    assert line == "1970-01-01T00:00:00.500Z r-1 Task timed out after 3.00 seconds\n"
