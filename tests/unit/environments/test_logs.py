"""Platform log lines as Lambda writes them, the 4 KB tail, and pipe-to-line splitting."""

from __future__ import annotations

import pytest

from lamina.environments.logs import (
    LINE_MAX,
    TAIL_BYTES,
    LineSplitter,
    Report,
    end_line,
    log_group,
    log_stream,
    start_line,
    tail,
)

RID = "8f507cfc-xmpl-4697-b07a-ac58fc914c95"


def test_warm_report_line_matches_lambda() -> None:
    report = Report(RID, duration_ms=2.34, memory_mb=128, max_memory_mb=38)
    assert report.line() == (
        f"REPORT RequestId: {RID}\tDuration: 2.34 ms\tBilled Duration: 3 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 38 MB\t"
    )


def test_cold_report_line_adds_init_duration() -> None:
    report = Report(RID, 102.5, 512, 71, init_duration_ms=143.219)
    assert report.line() == (
        f"REPORT RequestId: {RID}\tDuration: 102.50 ms\tBilled Duration: 103 ms\t"
        "Memory Size: 512 MB\tMax Memory Used: 71 MB\tInit Duration: 143.22 ms\t"
    )


def test_timeout_report_line_has_status_last() -> None:
    report = Report(RID, 3000.0, 128, 50, init_duration_ms=10.0, status="timeout")
    fields = report.line().split("\t")
    assert fields[-3:] == ["Init Duration: 10.00 ms", "Status: timeout", ""]
    assert "Billed Duration: 3000 ms" in fields


@pytest.mark.parametrize(
    ("duration", "billed"),
    [(0.0, 1), (0.01, 1), (1.0, 1), (1.001, 2), (99.5, 100), (100.0, 100), (1234.0001, 1235)],
)
def test_billed_duration_is_rounded_up_to_the_millisecond(duration: float, billed: int) -> None:
    assert f"\tBilled Duration: {billed} ms\t" in Report(RID, duration, 128, 1).line()


def test_platform_lines() -> None:
    assert start_line(RID, "$LATEST") == f"START RequestId: {RID} Version: $LATEST"
    assert start_line(RID, "7") == f"START RequestId: {RID} Version: 7"
    assert end_line(RID) == f"END RequestId: {RID}"


def test_log_group_and_stream_names() -> None:
    assert log_group("my-fn") == "/aws/lambda/my-fn"
    assert log_stream("$LATEST", "abc123", now=1_700_000_000) == "2023/11/14/[$LATEST]abc123"
    assert log_stream("3", "e", now=0) == "1970/01/01/[3]e"


# --------------------------------------------------------------------- tail


def test_tail_of_a_short_log_is_all_of_it() -> None:
    assert tail(["START", "hello", "END"]) == "START\nhello\nEND\n"
    assert tail([]) == ""


def test_tail_keeps_the_last_4096_bytes() -> None:
    lines = [f"line {i:05d}" for i in range(2000)]  # 11 bytes each with the newline
    text = "".join(line + "\n" for line in lines)
    kept = tail(lines)
    assert len(kept.encode()) == TAIL_BYTES
    assert kept == text[-TAIL_BYTES:]
    assert kept.endswith("line 01999\n")


def test_tail_never_starts_inside_a_utf8_character() -> None:
    lines = ["é" * 3000]  # 6001 bytes with the newline: byte -4096 is the 2nd half of an é
    kept = tail(lines)
    assert kept == "é" * 2047 + "\n"
    assert len(kept.encode()) <= TAIL_BYTES


# ------------------------------------------------------------ LineSplitter


def test_complete_lines_come_out_at_once() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntwo\n") == ["one", "two"]
    assert splitter.flush() == []


def test_a_partial_line_waits_for_its_newline() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"hel") == []
    assert splitter.feed(b"lo wor") == []
    assert splitter.feed(b"ld\nnext") == ["hello world"]
    assert splitter.flush() == ["next"]
    assert splitter.flush() == []


def test_crlf_and_empty_lines() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\r\n\r\nb\n\n") == ["a", "", "b", ""]


def test_a_utf8_character_split_across_chunks_survives() -> None:
    encoded = "naïve ☃\n".encode()
    splitter = LineSplitter()
    lines = [line for i in range(len(encoded)) for line in splitter.feed(encoded[i : i + 1])]
    assert lines == ["naïve ☃"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert LineSplitter().feed(b"bad \xff byte\n") == ["bad \ufffd byte"]


def test_a_long_terminated_line_becomes_events_no_bigger_than_the_limit() -> None:
    splitter = LineSplitter()
    out = splitter.feed(b"y" * (LINE_MAX + 5) + b"\nafter\n")
    assert all(len(line.encode()) <= LINE_MAX for line in out)
    assert out[-1] == "after"
    assert out[0] == "y" * LINE_MAX


def test_a_line_with_no_end_is_cut_instead_of_buffered_forever() -> None:
    splitter = LineSplitter()
    out: list[str] = []
    for _ in range(8):
        out += splitter.feed(b"z" * 65536)
    assert out  # emitted before any newline or flush
    assert all(len(line) <= LINE_MAX for line in out)


def test_a_line_with_no_end_loses_no_bytes() -> None:
    data = b"z" * (2 * LINE_MAX + 10)
    splitter = LineSplitter()
    out: list[str] = []
    for i in range(0, len(data), 65536):  # as os.read hands out a pipe
        out += splitter.feed(data[i : i + 65536])
    out += splitter.flush()
    assert "".join(out) == data.decode()
