"""cgroups.py against a fake /sys/fs/cgroup: a folder tree with the files the kernel
would show (mkdir in a real cgroupfs makes them; here the test does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.environments import cgroups
from lamina.environments.cgroups import CgroupLayout


def _v1(root: Path) -> CgroupLayout:
    for controller in ("memory", "pids", "cpu"):
        (root / controller / "lamina").mkdir(parents=True)
    return CgroupLayout(1, root / "memory/lamina", root / "pids/lamina", root / "cpu/lamina")


class _FakeKernel:
    """mkdir in cgroupfs creates the control files: emulate that for `create`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_mkdir = Path.mkdir

        def mkdir(path: Path, *args: object, **kwargs: object) -> None:
            real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]
            for name in ("memory.limit_in_bytes", "memory.max", "pids.max", "cpu.shares",
                         "cpu.weight", "cgroup.procs"):  # fmt: skip
                (path / name).write_text("")

        monkeypatch.setattr(Path, "mkdir", mkdir)


def test_v1_create_sizes_memory_pids_and_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = _v1(tmp_path)
    _FakeKernel(monkeypatch)
    group = layout.create("env1", 1769)
    assert (tmp_path / "memory/lamina/env1/memory.limit_in_bytes").read_text() == str(1769 << 20)
    assert (tmp_path / "pids/lamina/env1/pids.max").read_text() == str(cgroups.PIDS_MAX)
    # one full CPU's shares at 1,769 MB, as Lambda
    assert (tmp_path / "cpu/lamina/env1/cpu.shares").read_text() == "1024"
    assert group.procs_files == [
        str(tmp_path / f"{c}/lamina/env1/cgroup.procs") for c in ("memory", "pids", "cpu")
    ]


def test_cpu_shares_are_proportional_to_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = _v1(tmp_path)
    _FakeKernel(monkeypatch)
    layout.create("small", 128)
    assert int((tmp_path / "cpu/lamina/small/cpu.shares").read_text()) == 128 * 1024 // 1769


def test_v2_create_uses_one_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = tmp_path / "lamina"
    parent.mkdir()
    _FakeKernel(monkeypatch)
    group = CgroupLayout(2, parent, parent, parent).create("env2", 256)
    assert (parent / "env2/memory.max").read_text() == str(256 << 20)
    assert (parent / "env2/pids.max").read_text() == str(cgroups.PIDS_MAX)
    assert group.procs_files == [str(parent / "env2/cgroup.procs")]


def test_peak_and_oom_are_read_from_the_group(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "memory.max_usage_in_bytes").write_text(str(77 << 20))
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    group = cgroups.EnvironmentCgroup(1, (v1,), v1, None)
    assert group.peak_bytes() == 77 << 20
    assert group.oom_killed()
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.peak").write_text(str(5 << 20))
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    group2 = cgroups.EnvironmentCgroup(2, (v2,), v2, v2)
    assert group2.peak_bytes() == 5 << 20
    assert not group2.oom_killed()


def test_remove_reports_a_busy_group(tmp_path: Path) -> None:
    empty, busy = tmp_path / "empty", tmp_path / "busy"
    empty.mkdir()
    busy.mkdir()
    (busy / "cgroup.procs").write_text("123")  # rmdir of a non-empty folder fails, like EBUSY
    group = cgroups.EnvironmentCgroup(1, (empty, busy), empty, None)
    assert group.remove() is False
    assert not empty.exists()
    (busy / "cgroup.procs").unlink()
    assert group.remove() is True


def test_probe_v1_uses_lamina_s_own_groups(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    (root / "memory/host/box").mkdir(parents=True)
    (root / "pids").mkdir(parents=True)
    own = tmp_path / "self-cgroup"
    own.write_text("8:pids:/\n4:memory:/host/box\n1:cpu:/\n0::/\n")
    layout = cgroups.probe(root, own)
    # the trial group has no limit files in a plain folder: nothing is usable
    assert layout is None
    assert (root / "memory/host/box/lamina").is_dir()


def test_probe_without_any_cgroup_file_is_none(tmp_path: Path) -> None:
    assert cgroups.probe(tmp_path, tmp_path / "missing") is None


def test_membership_parses_v1_and_v2_lines() -> None:
    text = "9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/d\n"
    assert cgroups._membership(text) == {
        "systemd": "/", "memory": "/a/b", "cpu": "/c", "cpuacct": "/c", "": "/d",
    }  # fmt: skip


class _FakeV2:
    """A cgroup2 mount as files: cgroup.subtree_control reads back without the '+'
    (as the kernel's does), and lamina's own group refuses to pass controllers on
    while a process is in it (v2's "no internal processes" rule, EBUSY)."""

    def __init__(self, root: Path, own: str, monkeypatch: pytest.MonkeyPatch, busy: bool) -> None:
        self.own = root / own.lstrip("/")
        self.own.mkdir(parents=True)
        (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
        self.busy = busy
        real_write = cgroups._write

        def write(path: Path, text: str) -> None:
            import errno

            if path.name == "cgroup.subtree_control":
                if path.parent == self.own and self.busy:
                    raise OSError(errno.EBUSY, "Device or resource busy")
                names = [t.lstrip("+") for t in text.split()]
                path.write_text(" ".join(names) + "\n")
                return
            if path.name == "cgroup.procs" and path.parent.name.startswith("server-"):
                self.busy = False  # lamina left its group for a leaf
            real_write(path, text) if path.exists() else path.write_text(text)

        monkeypatch.setattr(cgroups, "_write", write)


@pytest.mark.parametrize("busy", [False, True])
def test_probe_v2_passes_memory_pids_cpu_down_to_lamina_s_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, busy: bool
) -> None:
    import os

    root = tmp_path / "cgroup"
    fake = _FakeV2(root, "/system.slice/lamina.service", monkeypatch, busy)
    own = tmp_path / "self-cgroup"
    own.write_text("0::/system.slice/lamina.service\n")
    layout = cgroups.probe(root, own)
    parent = fake.own / "lamina" / str(os.getpid())
    assert layout == CgroupLayout(2, parent, parent, parent)
    for group in (fake.own, fake.own / "lamina", parent):
        assert (group / "cgroup.subtree_control").read_text().split() == ["memory", "pids", "cpu"]
    # a busy group: lamina moved itself into a leaf of its own first
    leaf = fake.own / "lamina" / f"server-{os.getpid()}"
    assert leaf.is_dir() is busy
    if busy:
        assert (leaf / "cgroup.procs").read_text() == str(os.getpid())


def test_probe_v2_without_the_memory_controller_falls_back_to_v1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cgroup"
    (root / "unified").mkdir(parents=True)
    (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")  # this host's
    own = tmp_path / "self-cgroup"
    own.write_text("4:memory:/\n0::/\n")
    monkeypatch.setattr(cgroups, "_probe_v1", lambda root, membership: "v1")
    assert cgroups.probe(root, own) == "v1"
    assert not (root / "unified" / "lamina").exists()  # nothing made in the v2 tree


def test_v2_create_writes_the_kernel_s_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "lamina"
    parent.mkdir()
    real_mkdir = Path.mkdir

    def mkdir(path: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]
        for name in ("memory.max", "memory.swap.max", "memory.oom.group", "pids.max",
                     "cpu.weight", "cgroup.procs"):  # fmt: skip  # cgroup v2's names
            (path / name).write_text("")

    monkeypatch.setattr(Path, "mkdir", mkdir)
    layout = CgroupLayout(2, parent, parent, parent)
    group = layout.create("full", 1769)
    files = {p.name: p.read_text() for p in (parent / "full").iterdir()}
    assert files == {
        "memory.max": str(1769 << 20), "memory.swap.max": "0", "memory.oom.group": "1",
        "pids.max": "1024", "cpu.weight": "100", "cgroup.procs": "",
    }  # fmt: skip
    assert group.version == 2 and group.memory == group.pids == parent / "full"
    layout.create("small", 128)
    assert (parent / "small" / "cpu.weight").read_text() == str(128 * 100 // 1769)
