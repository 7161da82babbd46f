"""How much memory an environment's process uses: its peak, for the REPORT line's Max
Memory Used, and its resident set split by sharing, for the pool's listing."""

from __future__ import annotations

import contextlib
import os

from lamina.environments.process import Child


class MemoryUse:
    """One environment's memory, read through files opened once when its process
    starts: re-reading an open file with pread costs a fraction of opening it again on
    every invocation (a cgroup file opened per invocation measured ~10% of the host's
    CPU per warm invoke)."""

    def __init__(self) -> None:
        self._process: Child | None = None
        self._status_fd = -1  # /proc/<pid>/status, for VmHWM
        self._peak_fd = -1  # the sandbox's cgroup peak, when it has one

    def watch(self, process: Child) -> None:
        self._process = process
        with contextlib.suppress(OSError):
            self._status_fd = os.open(f"/proc/{process.pid}/status", os.O_RDONLY)
        peak_path = getattr(process, "peak_memory_path", None)
        path = peak_path() if callable(peak_path) else None
        if path is not None:
            with contextlib.suppress(OSError):
                self._peak_fd = os.open(path, os.O_RDONLY)

    def peak_mb(self) -> int:
        """Max Memory Used: the sandbox's cgroup peak when there is one, else VmHWM."""
        if self._peak_fd >= 0:
            try:
                return max(1, int(os.pread(self._peak_fd, 64, 0)) >> 20)
            except (OSError, ValueError):
                pass  # the group is gone: the child kept its last peak
        peak = getattr(self._process, "peak_memory_mb", None)
        from_cgroup = peak() if callable(peak) else 0
        return int(from_cgroup) or _peak_rss_mb(self._status_fd)

    def resident(self) -> dict[str, int]:
        """Resident memory in KiB: rss, pss (shared pages split among sharers) and uss
        (pages only this process has) — forks of a zygote share most of theirs."""
        out = {"rss_kb": 0, "pss_kb": 0, "uss_kb": 0}
        if self._process is None:
            return out
        try:
            with open(f"/proc/{self._process.pid}/smaps_rollup", "rb") as rollup:
                for line in rollup:
                    key, _, rest = line.partition(b":")
                    if key in (b"Rss", b"Pss", b"Private_Clean", b"Private_Dirty"):
                        value = int(rest.split()[0])
                        if key == b"Rss":
                            out["rss_kb"] = value
                        elif key == b"Pss":
                            out["pss_kb"] = value
                        else:
                            out["uss_kb"] += value
        except (OSError, ValueError):
            pass
        return out

    def close(self) -> None:
        """Once the process is gone; the last peak stays readable from the child."""
        for fd in (self._status_fd, self._peak_fd):
            if fd >= 0:
                os.close(fd)
        self._status_fd = self._peak_fd = -1


def _peak_rss_mb(status_fd: int) -> int:
    """VmHWM (peak resident set) from an open /proc/<pid>/status."""
    if status_fd < 0:
        return 0
    try:
        data = os.pread(status_fd, 4096, 0)
    except OSError:
        return 0
    start = data.find(b"VmHWM:")
    if start < 0:
        return 0
    end = data.find(b"kB", start)
    return max(1, int(data[start + 6 : end]) // 1024)
