"""Per-environment control groups: memory (from MemorySize), pids, CPU share.

cgroup v2 is used when its unified hierarchy has the memory controller, else the v1
controllers mounted under /sys/fs/cgroup/<controller>. Environments' groups live
under lamina's own group (``<lamina's cgroup>/lamina/<lamina's pid>/<environment id>``),
so whatever limits the host puts on lamina also bound its functions, and several
lamina processes on one host never touch each other's groups. A lamina that died
without cleaning up leaves empty groups; the next one removes them at start-up.

lamina creates and sizes an environment's group before the process starts; the process
joins it itself (writes its pid to each ``cgroup.procs``) before any user code runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Lambda gives one full vCPU at 1,769 MB; cpu.shares' (v1) default of 1024 is one CPU.
MB_PER_VCPU = 1769
# Processes and threads per environment (Lambda's documented limit is 1,024).
PIDS_MAX = 1024


@dataclass(frozen=True, slots=True)
class CgroupLayout:
    """Where lamina makes environments' groups, per controller; None = not available."""

    version: int  # 1 or 2
    memory: Path | None
    pids: Path | None
    cpu: Path | None

    @property
    def any(self) -> bool:
        return any((self.memory, self.pids, self.cpu))

    def describe(self) -> dict[str, object]:
        return {
            "version": self.version,
            "memory": self.memory is not None,
            "pids": self.pids is not None,
            "cpu": self.cpu is not None,
        }

    def sweep(self) -> None:
        """Remove this lamina's environment groups that are empty (at shutdown)."""
        for parent in {p for p in (self.memory, self.pids, self.cpu) if p is not None}:
            _remove_tree(parent, keep_top=True)

    def create(self, env_id: str, memory_mb: int) -> EnvironmentCgroup:
        """Make and size the environment's groups (about half a millisecond for three)."""
        cgroup = self.make(env_id)
        try:
            self.size(cgroup, memory_mb)
        except OSError:
            cgroup.remove()
            raise
        return cgroup

    def nested(self, name: str) -> CgroupLayout:
        """A layout of its own under this one, for another serving process (serving/): its
        environments' groups, and its sweep at shutdown, stay inside it."""
        if self.version == 2:
            assert self.memory is not None
            group = self.memory / name
            group.mkdir(exist_ok=True)
            enabled = _read(self.memory / "cgroup.subtree_control").split()
            if enabled:
                _write(group / "cgroup.subtree_control", " ".join("+" + c for c in enabled))
            return CgroupLayout(
                2, group, group if self.pids else None, group if self.cpu else None
            )
        memory, pids, cpu = (
            None if parent is None else parent / name for parent in (self.memory, self.pids, self.cpu)
        )
        for made in (memory, pids, cpu):
            if made is not None:
                made.mkdir(exist_ok=True)
        return CgroupLayout(1, memory, pids, cpu)

    def make(self, name: str) -> EnvironmentCgroup:
        """Make an environment's groups, not sized yet (a stem's: see environments/stems.py)."""
        groups: list[Path] = []
        try:
            if self.version == 2:
                assert self.memory is not None
                group = self.memory / name
                group.mkdir()
                groups.append(group)
                return EnvironmentCgroup(
                    2, tuple(groups), group, group if self.pids is not None else None,
                    group if self.cpu is not None else None,
                )  # fmt: skip
            made: dict[str, Path] = {}
            for kind, parent in (("memory", self.memory), ("pids", self.pids), ("cpu", self.cpu)):
                if parent is not None:
                    made[kind] = parent / name
                    made[kind].mkdir()
                    groups.append(made[kind])
            return EnvironmentCgroup(
                1, tuple(groups), made.get("memory"), made.get("pids"), made.get("cpu")
            )
        except OSError:
            EnvironmentCgroup(self.version, tuple(groups), None, None).remove()
            raise

    def size(self, cgroup: EnvironmentCgroup, memory_mb: int) -> None:
        """Write an environment's limits: memory as MemorySize, a pid limit, and a CPU
        share in proportion to memory (one vCPU's worth at MB_PER_VCPU)."""
        if cgroup.version == 2:
            group = cgroup.memory
            assert group is not None
            _write(group / "memory.max", str(memory_mb << 20))
            _write_if(group / "memory.swap.max", "0")
            if cgroup.pids is not None:
                _write(group / "pids.max", str(PIDS_MAX))
            # One OOM kill ends the whole environment, as a sandbox's init would.
            _write_if(group / "memory.oom.group", "1")
            if cgroup.cpu is not None:  # cpu.weight: 100 is one share of the default
                _write(
                    group / "cpu.weight",
                    str(max(1, min(10000, memory_mb * 100 // MB_PER_VCPU))),
                )
            return
        if cgroup.memory is not None:
            _write(cgroup.memory / "memory.limit_in_bytes", str(memory_mb << 20))
            _write_if(cgroup.memory / "memory.memsw.limit_in_bytes", str(memory_mb << 20))
        if cgroup.pids is not None:
            _write(cgroup.pids / "pids.max", str(PIDS_MAX))
        if cgroup.cpu is not None:
            _write(cgroup.cpu / "cpu.shares", str(max(2, memory_mb * 1024 // MB_PER_VCPU)))


@dataclass(frozen=True, slots=True)
class EnvironmentCgroup:
    version: int
    groups: tuple[Path, ...]
    memory: Path | None
    pids: Path | None
    cpu: Path | None = None

    @property
    def procs_files(self) -> list[str]:
        return [str(group / "cgroup.procs") for group in self.groups]

    @property
    def peak_file(self) -> Path | None:
        """The file of the group's peak memory (v2 memory.peak, v1
        memory.max_usage_in_bytes), in bytes; None without a memory controller."""
        if self.memory is None:
            return None
        return self.memory / ("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes")

    def peak_bytes(self) -> int:
        """The group's peak memory; 0 if unknown."""
        if self.peak_file is None:
            return 0
        try:
            return int(self.peak_file.read_text())
        except (OSError, ValueError):
            return 0

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this group."""
        if self.memory is None:
            return False
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = (self.memory / name).read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def remove(self) -> bool:
        """Remove the groups; False while a process is still in one (try again later)."""
        done = True
        for group in self.groups:
            try:
                group.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                done = False
        return done


def probe(root: Path = CGROUP_ROOT, own: Path = Path("/proc/self/cgroup")) -> CgroupLayout | None:
    """Find usable controllers, and make lamina's parent groups; None if there are none."""
    try:
        membership = _membership(own.read_text())
    except OSError:
        return None
    layout = _probe_v2(root, membership.get("", "/"))
    if layout is None:
        layout = _probe_v1(root, membership)
    return layout


def _membership(text: str) -> dict[str, str]:
    """/proc/self/cgroup as controller -> path ("" for the v2 hierarchy)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            out[controller.removeprefix("name=")] = parts[2]
    return out


def _probe_v2(root: Path, own: str) -> CgroupLayout | None:
    for mount in (root, root / "unified"):
        controllers = _read(mount / "cgroup.controllers").split()
        if "memory" not in controllers:
            continue
        wanted = [c for c in ("memory", "pids", "cpu") if c in controllers]
        try:
            parent = delegate_v2(mount / own.lstrip("/"), wanted)
        except OSError:
            continue
        enabled = _read(parent / "cgroup.subtree_control").split()
        if "memory" not in enabled:
            continue
        return CgroupLayout(
            2, parent, parent if "pids" in enabled else None, parent if "cpu" in enabled else None
        )
    return None


def delegate_v2(own: Path, controllers: Sequence[str]) -> Path:
    """Make ``<own>/lamina/<pid>`` with `controllers` enabled down to it, and return it.

    cgroup v2's rule that only leaves hold processes ("no internal processes", except
    in the root) means lamina's own group can pass controllers on only once no
    process is in it: when it is busy (lamina in a container, or a service), lamina
    moves itself into a leaf of its own (``lamina/server-<pid>``) first, and every
    process it starts later is born there."""
    top = own / "lamina"
    parent = top / str(os.getpid())
    top.mkdir(exist_ok=True)
    _sweep_dead(top)
    parent.mkdir(exist_ok=True)
    wanted = " ".join("+" + c for c in controllers)
    try:
        _write(own / "cgroup.subtree_control", wanted)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        leaf = top / f"server-{os.getpid()}"
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", str(os.getpid()))
        _write(own / "cgroup.subtree_control", wanted)  # EBUSY again: others are in it
    for group in (top, parent):
        _write(group / "cgroup.subtree_control", wanted)
    return parent


def _probe_v1(root: Path, membership: dict[str, str]) -> CgroupLayout | None:
    found: dict[str, Path | None] = {}
    for controller, limit_file in (
        ("memory", "memory.limit_in_bytes"),
        ("pids", "pids.max"),
        ("cpu", "cpu.shares"),
    ):
        found[controller] = None
        mount = root / controller
        own = membership.get(controller)
        if own is None or not (mount / own.lstrip("/")).is_dir():
            continue
        top = mount / own.lstrip("/") / "lamina"
        parent = top / str(os.getpid())
        try:
            top.mkdir(exist_ok=True)
            _sweep_dead(top)
            parent.mkdir(exist_ok=True)
            trial = parent / "probe"
            trial.mkdir(exist_ok=True)
            usable = (trial / limit_file).exists()
            trial.rmdir()
        except OSError:
            continue
        if usable:
            found[controller] = parent
    layout = CgroupLayout(1, found["memory"], found["pids"], found["cpu"])
    return layout if layout.any else None


def _sweep_dead(top: Path) -> None:
    """Remove the groups of lamina processes that are gone (and anything empty)."""
    with contextlib.suppress(OSError):
        for parent in top.iterdir():
            if not parent.is_dir():
                continue
            if parent.name.isdigit() and _alive(int(parent.name)):
                continue
            _remove_tree(parent, keep_top=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_tree(group: Path, keep_top: bool) -> None:
    """rmdir a group's empty subgroups, deepest first (a cgroup's files cannot be
    deleted: rmdir of the folder is how a group goes)."""
    with contextlib.suppress(OSError):
        for child in group.iterdir():
            if child.is_dir():
                _remove_tree(child, keep_top=False)
    if not keep_top:
        with contextlib.suppress(OSError):
            group.rmdir()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _write_if(path: Path, text: str) -> None:
    """Files only some kernels have (swap accounting is often off)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        _write(path, text)
