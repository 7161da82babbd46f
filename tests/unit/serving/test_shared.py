"""SharedCounters: the file, its validation, and counts seen across real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

from lamina.serving.shared import IDLE_BUCKETS, SharedCounters, idle_bucket


def run_python(code: str, *args: str) -> str:
    """Run `code` in a fresh interpreter (another process mapping the same file)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_create_makes_a_private_zeroed_file(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    path.write_bytes(b"stale from an earlier run")
    primary = SharedCounters.create(path, 3)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert (primary.slot, primary.processes) == (0, 3)
        assert primary.generation() == 0
        assert (primary.others_in_flight(), primary.others_memory_mb()) == (0, 0)
    finally:
        primary.close()
        primary.close()  # twice is fine


def test_create_needs_at_least_one_process(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SharedCounters.create(tmp_path / "counters", 0)


def test_attach_validates_the_file_and_the_slot(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    with pytest.raises(FileNotFoundError):
        SharedCounters.attach(path, 1)
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="too short"):
        SharedCounters.attach(path, 1)
    path.write_bytes(bytes(4096))
    with pytest.raises(ValueError, match="bad magic"):
        SharedCounters.attach(path, 1)
    primary = SharedCounters.create(path, 2)
    try:
        with pytest.raises(ValueError, match=r"slot 2 is out of range: .* has 2 slots"):
            SharedCounters.attach(path, 2)
        with pytest.raises(ValueError, match="out of range"):
            SharedCounters.attach(path, -1)
        worker = SharedCounters.attach(path, 1)
        assert (worker.slot, worker.processes) == (1, 2)
        worker.close()
    finally:
        primary.close()


def test_others_sums_leave_out_the_own_slot(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    primary = SharedCounters.create(path, 3)
    one, two = SharedCounters.attach(path, 1), SharedCounters.attach(path, 2)
    try:
        primary.publish_in_flight(1)
        one.publish_in_flight(10)
        two.publish_in_flight(100)
        primary.publish_memory_mb(128)
        one.publish_memory_mb(256)
        two.publish_memory_mb(1024)
        assert (primary.others_in_flight(), one.others_in_flight()) == (110, 101)
        assert two.others_in_flight() == 11
        assert (primary.others_memory_mb(), two.others_memory_mb()) == (1280, 384)
        one.claim(4242)
        assert primary.pid(1) == 4242
    finally:
        for counters in (primary, one, two):
            counters.close()


def test_clear_zeroes_a_dead_workers_row(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    primary = SharedCounters.create(path, 3)
    one, two = SharedCounters.attach(path, 1), SharedCounters.attach(path, 2)
    try:
        for counters, n in ((one, 5), (two, 7)):
            counters.claim(1000 + n)
            counters.publish_in_flight(n)
            counters.publish_memory_mb(n * 128)
        primary.clear(1)
        assert (primary.others_in_flight(), primary.others_memory_mb()) == (7, 7 * 128)
        assert (primary.pid(1), primary.pid(2)) == (0, 1007)
        with pytest.raises(ValueError, match="out of range"):
            primary.clear(3)
    finally:
        for counters in (primary, one, two):
            counters.close()


def test_generation_and_counts_are_seen_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    primary = SharedCounters.create(path, 2)
    try:
        assert primary.bump() == 1
        assert primary.bump() == 2
        primary.publish_in_flight(3)
        primary.publish_memory_mb(512)
        seen = run_python(
            """
            import os, sys
            from pathlib import Path
            from lamina.serving.shared import IDLE_BUCKETS, SharedCounters, idle_bucket
            worker = SharedCounters.attach(Path(sys.argv[1]), 1)
            worker.claim(os.getpid())
            worker.publish_in_flight(4)
            worker.publish_memory_mb(256)
            print(worker.generation(), worker.others_in_flight(), worker.others_memory_mb())
            worker.close()
            """,
            str(path),
        )
        assert seen.split() == ["2", "3", "512"]
        assert (primary.others_in_flight(), primary.others_memory_mb()) == (4, 256)
        assert primary.pid(1) not in (0, os.getpid())
    finally:
        primary.close()


def test_locked_excludes_another_process(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    primary = SharedCounters.create(path, 2)
    try:
        with primary.locked():
            held = run_python(
                """
                import fcntl, os, sys
                fd = os.open(sys.argv[1], os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    print("taken")
                except BlockingIOError:
                    print("held")
                """,
                str(path),
            )
        assert held.strip() == "held"
        with primary.locked():  # and it was given back
            pass
    finally:
        primary.close()


# --- the idle-hint table ---


def test_idle_bucket_is_crc32_of_the_code_key_in_range() -> None:
    keys = [f"fn{i}:$LATEST:rev-{i}" for i in range(2000)] + ["", "ünïcode:1:r"]
    buckets = [idle_bucket(key) for key in keys]
    assert all(0 <= bucket < IDLE_BUCKETS for bucket in buckets)
    assert idle_bucket("fn:$LATEST:rev-1") == zlib.crc32(b"fn:$LATEST:rev-1") % IDLE_BUCKETS
    assert idle_bucket("fn:$LATEST:rev-1") == idle_bucket("fn:$LATEST:rev-1")
    assert len(set(buckets)) > IDLE_BUCKETS // 2  # spread, not a handful of buckets


def test_idle_bucket_is_the_same_in_another_process() -> None:
    keys = ["fn:$LATEST:rev-1", "other:7:abc", "ünïcode:1:r"]
    # A different hash seed: hash() would differ between the processes, crc32 does not.
    done = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom lamina.serving.shared import idle_bucket\n"
         "print(*(idle_bucket(k) for k in sys.argv[1:]))", *keys],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )  # fmt: skip
    assert done.stdout.split() == [str(idle_bucket(key)) for key in keys]


def test_idle_elsewhere_names_another_slot_never_its_own(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    primary = SharedCounters.create(path, 3)
    one, two = SharedCounters.attach(path, 1), SharedCounters.attach(path, 2)
    try:
        bucket = idle_bucket("fn:$LATEST:rev-1")
        assert [c.idle_elsewhere(bucket) for c in (primary, one, two)] == [None, None, None]
        one.add_idle(bucket, 1)
        assert one.idle_elsewhere(bucket) is None  # its own idle one is not "elsewhere"
        assert (primary.idle_elsewhere(bucket), two.idle_elsewhere(bucket)) == (1, 1)
        assert primary.idle_elsewhere((bucket + 1) % IDLE_BUCKETS) is None  # other buckets
        one.add_idle(bucket, 2)
        one.add_idle(bucket, -3)  # counts, not flags: three in, three out
        assert primary.idle_elsewhere(bucket) is None
        primary.add_idle(bucket, 1)
        assert (one.idle_elsewhere(bucket), two.idle_elsewhere(bucket)) == (0, 0)
        assert primary.idle_elsewhere(bucket) is None
    finally:
        for counters in (primary, one, two):
            counters.close()


def test_idle_columns_do_not_overlap_the_rows_or_each_other(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    primary = SharedCounters.create(path, 3)
    one, two = SharedCounters.attach(path, 1), SharedCounters.attach(path, 2)
    try:
        for bucket in (0, IDLE_BUCKETS - 1):  # the first and last word of each column
            two.add_idle(bucket, 5)
            assert (primary.idle_elsewhere(bucket), one.idle_elsewhere(bucket)) == (2, 2)
        assert (primary.pid(2), primary.others_in_flight(), primary.others_memory_mb()) == (0, 0, 0)
        one.claim(4242)
        one.publish_in_flight(7)
        one.publish_memory_mb(512)
        assert all(primary.idle_elsewhere(b) in (None, 2) for b in range(IDLE_BUCKETS))
        assert os.stat(path).st_size == (8 + (8 + IDLE_BUCKETS) * 3) * 8
    finally:
        for counters in (primary, one, two):
            counters.close()


def test_a_negative_count_is_no_idle_environment(tmp_path: Path) -> None:
    # A hint running below zero for a moment (a take seen before its release) must not
    # send calls anywhere.
    path = tmp_path / "counters"
    primary = SharedCounters.create(path, 2)
    one = SharedCounters.attach(path, 1)
    try:
        one.add_idle(3, -1)
        assert primary.idle_elsewhere(3) is None
    finally:
        primary.close()
        one.close()


def test_clear_zeroes_a_dead_workers_idle_column_only(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    primary = SharedCounters.create(path, 3)
    one, two = SharedCounters.attach(path, 1), SharedCounters.attach(path, 2)
    try:
        for bucket in (0, 17, IDLE_BUCKETS - 1):
            one.add_idle(bucket, 2)
            two.add_idle(bucket, 1)
        one.add_idle(40, 1)
        primary.add_idle(40, 1)
        primary.clear(1)
        assert [primary.idle_elsewhere(b) for b in (0, 17, IDLE_BUCKETS - 1)] == [2, 2, 2]
        assert primary.idle_elsewhere(40) is None  # only slot 1 had one there
        assert (two.idle_elsewhere(40), one.idle_elsewhere(40)) == (0, 0)  # its own: kept
        primary.clear(2)
        assert all(primary.idle_elsewhere(b) is None for b in range(IDLE_BUCKETS))
    finally:
        for counters in (primary, one, two):
            counters.close()


def test_idle_counts_are_seen_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    primary = SharedCounters.create(path, 2)
    try:
        assert idle_bucket("mine:$LATEST:r") != idle_bucket("fn:$LATEST:rev-1")
        primary.add_idle(idle_bucket("mine:$LATEST:r"), 1)
        seen = run_python(
            """
            import sys
            from pathlib import Path
            from lamina.serving.shared import SharedCounters, idle_bucket
            worker = SharedCounters.attach(Path(sys.argv[1]), 1)
            worker.add_idle(idle_bucket("fn:$LATEST:rev-1"), 2)
            worker.add_idle(idle_bucket("fn:$LATEST:rev-1"), -1)
            print(worker.idle_elsewhere(idle_bucket("mine:$LATEST:r")))
            worker.close()
            """,
            str(path),
        )
        assert seen.strip() == "0"  # it saw the primary's
        assert primary.idle_elsewhere(idle_bucket("fn:$LATEST:rev-1")) == 1
        assert primary.idle_elsewhere(idle_bucket("mine:$LATEST:r")) is None
        primary.clear(1)  # the worker died with one idle: the primary forgets it
        assert primary.idle_elsewhere(idle_bucket("fn:$LATEST:rev-1")) is None
    finally:
        primary.close()
