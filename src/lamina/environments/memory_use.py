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
        """Resident memory in KiB of the environment's processes together (a sandbox's
        init, the function's own, whatever it started): rss, pss (shared pages split
        among sharers) and uss (pages only they have) — forks of a zygote share most."""
        out = {"rss_kb": 0, "pss_kb": 0, "uss_kb": 0}
        if self._process is None:
            return out
        for pid in _process_tree(self._process.pid):
            _add_rollup(pid, out)
        return out

    def close(self) -> None:
        """Once the process is gone; the last peak stays readable from the child."""
        for fd in (self._status_fd, self._peak_fd):
            if fd >= 0:
                os.close(fd)
        self._status_fd = self._peak_fd = -1


def _process_tree(pid: int, limit: int = 4096) -> list[int]:
    """`pid` and the processes below it, as /proc lists each thread's children."""
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < limit:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", "rb") as children:
                    todo.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue  # gone meanwhile
    return found


def _add_rollup(pid: int, out: dict[str, int]) -> None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                key, _, rest = line.partition(b":")
                if key == b"Rss":
                    out["rss_kb"] += int(rest.split()[0])
                elif key == b"Pss":
                    out["pss_kb"] += int(rest.split()[0])
                elif key in (b"Private_Clean", b"Private_Dirty"):
                    out["uss_kb"] += int(rest.split()[0])
    except (OSError, ValueError):
        pass


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
