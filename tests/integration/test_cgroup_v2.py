"""cgroups.py's v2 path against the real kernel, as far as this machine allows.

A host whose memory, pids and cpu controllers are bound to cgroup v1 cannot give them
to the v2 hierarchy, but the v2 hierarchy is there (mounted afresh here, in a private
mount namespace), often with a controller v1 does not hold (hugetlb). That controller
stands in for memory/pids/cpu to check, for real: the delegation of controllers down
to lamina's groups, v2's "no internal processes" rule (and lamina moving itself into a
leaf when its own group is busy), an environment joining its group through
cgroup.procs, and a busy group refusing rmdir until it is empty.

What this cannot check here (no v2 memory/pids/cpu): the kernel accepting memory.max,
memory.swap.max, memory.oom.group, pids.max and cpu.weight as written, memory.peak
and memory.events — those are checked against a fake cgroupfs in
tests/unit/sandbox/test_cgroups.py. Skipped without root, or without a v2 hierarchy
with a free domain controller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0, reason="needs root on Linux"
)

# Runs in a child process of its own: it moves itself between cgroups.
SCENARIO = textwrap.dedent(
    """
    import ctypes, errno, json, os, signal, sys, time
    from pathlib import Path
    from lamina.environments import cgroups

    libc = ctypes.CDLL(None, use_errno=True)
    mount = Path(sys.argv[1])
    assert libc.unshare(0x00020000) == 0  # CLONE_NEWNS: the mount below is ours only
    assert libc.mount(None, b"/", None, (1 << 14) | (1 << 18), None) == 0  # rec private
    if libc.mount(b"cgroup2", str(mount).encode(), b"cgroup2", 0, None) != 0:
        print(json.dumps({"skip": "cannot mount cgroup2: " + os.strerror(ctypes.get_errno())}))
        sys.exit(0)
    free = [c for c in (mount / "cgroup.controllers").read_text().split()
            if c in ("hugetlb", "memory", "pids", "cpu", "io", "rdma", "misc")]
    if not free:
        print(json.dumps({"skip": "no domain controller in the v2 hierarchy"}))
        sys.exit(0)
    ctl = free[0]
    out = {"controller": ctl}
    base = mount / f"lamina-v2-test-{os.getpid()}"
    sleepers = []

    def where(pid="self"):
        return [l for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if l.startswith("0::")][0][3:]

    def sleeper(group):
        pid = os.fork()
        if pid == 0:
            (group / "cgroup.procs").write_text(str(os.getpid()))
            time.sleep(60)
            os._exit(0)
        sleepers.append(pid)
        for _ in range(100):
            if where(pid).endswith(group.name):
                return pid
            time.sleep(0.01)
        return pid

    root_had = ctl in (mount / "cgroup.subtree_control").read_text().split()
    try:
        # the root passes the controller on (it may hold processes: it is exempt)
        (mount / "cgroup.subtree_control").write_text("+" + ctl)
        # lamina's own group, busy with lamina itself (a service, a container's root)
        own = base / "service"
        own.mkdir(parents=True)
        (base / "cgroup.subtree_control").write_text("+" + ctl)
        (own / "cgroup.procs").write_text(str(os.getpid()))
        parent = cgroups.delegate_v2(own, [ctl])
        out["moved_to"] = where()
        out["enabled"] = {str(g.relative_to(base)): (g / "cgroup.subtree_control").read_text().split()
                          for g in (own, own / "lamina", parent)}
        # an environment's group: a leaf the environment joins itself
        env = parent / "env1"
        env.mkdir()
        out["env_files"] = sorted(p.name for p in env.iterdir() if p.name.startswith(ctl + "."))[:3]
        child = sleeper(env)
        out["child_in"] = where(child)
        group = cgroups.EnvironmentCgroup(2, (env,), None, None)
        out["remove_while_busy"] = group.remove()
        # no process may join a group that passes controllers on
        try:
            (parent / "cgroup.procs").write_text(str(child))
            out["internal_process"] = "allowed"
        except OSError as exc:
            out["internal_process"] = errno.errorcode[exc.errno]
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        sleepers.remove(child)
        for _ in range(100):
            if group.remove():
                break
            time.sleep(0.01)
        out["removed"] = not env.exists()
        # a group busy with another process cannot be delegated from: EBUSY, and the
        # probe falls back (to v1, or to no cgroup)
        other = base / "crowded"
        other.mkdir()
        sleeper(other)
        (other / "cgroup.procs").write_text(str(os.getpid()))
        try:
            cgroups.delegate_v2(other, [ctl])
            out["crowded"] = "delegated"
        except OSError as exc:
            out["crowded"] = errno.errorcode[exc.errno]
    finally:
        (mount / "cgroup.procs").write_text(str(os.getpid()))
        for pid in sleepers:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for _ in range(100):
            cgroups._remove_tree(base, keep_top=False)
            if not base.exists():
                break
            time.sleep(0.02)
    if not root_had:
        try:
            (mount / "cgroup.subtree_control").write_text("-" + ctl)
        except OSError:
            pass
    out["cleaned"] = not base.exists()
    print(json.dumps(out))
    """
)


def test_v2_delegation_leaves_and_joining_on_the_real_kernel(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup2"
    mount.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(mount)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    if "skip" in seen:
        pytest.skip(seen["skip"])
    ctl = seen["controller"]
    pid_dir = next(k for k in seen["enabled"] if k.startswith("service/lamina/"))
    # lamina's group was busy with lamina: it moved itself into a leaf of its own ...
    assert seen["moved_to"].endswith(f"/service/lamina/server-{pid_dir.rsplit('/', 1)[1]}")
    # ... and the controller is passed down to the environments' parent
    assert all(ctl in enabled for enabled in seen["enabled"].values()), seen
    assert seen["env_files"], seen  # the environment's group has the controller's files
    assert seen["child_in"].endswith("/env1")
    assert seen["remove_while_busy"] is False and seen["removed"] is True
    assert seen["internal_process"] == "EBUSY"
    assert seen["crowded"] == "EBUSY"
    assert seen["cleaned"]
