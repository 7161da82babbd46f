"""The sandbox policy: what it says about the machine, and the plan it builds."""

from __future__ import annotations

from pathlib import Path

from lamina.environments.cgroups import CgroupLayout
from lamina.environments.sandbox import (
    TASK_ROOT,
    Confinement,
    Protections,
    Sandbox,
    _runtime_dirs,
)

ALL = ("mount", "pid", "ipc", "uts", "net")


def _confinement(tmp_path: Path, **kwargs: object) -> Confinement:
    values: dict[str, object] = {
        "env_id": "e1", "code_dir": tmp_path / "code" / "abc", "run_dir": tmp_path / "run" / "e1",
        "memory_mb": 128, "tmp_mb": 512,
    }  # fmt: skip
    values.update(kwargs)
    return Confinement(**values)  # type: ignore[arg-type]


def _sandbox(**kwargs: object) -> Sandbox:
    protections = Protections(**{"namespaces": ALL, "root": True, "pivot_root": True,
                                 "bubblewrap": "/usr/bin/bwrap", "setpriv": "/usr/bin/setpriv",
                                 **kwargs})  # type: ignore[arg-type]  # fmt: skip
    return Sandbox(True, protections, (Path("/opt/py"),), (("usr/bin", "/bin"),))


def test_describe_says_what_is_off_and_why() -> None:
    described = _sandbox(namespaces=("mount", "pid"), bubblewrap=None).describe()
    assert described["enabled"] is True
    assert described["on"]["namespaces"] == ["mount", "pid"]
    assert described["on"]["memory_limit"] == "rlimit_as"
    off = " | ".join(described["off"])
    assert "net namespace" in off and "ipc namespace" in off
    assert "bubblewrap not found" in off
    assert "no memory cgroup" in off and "no pids cgroup" in off


def test_a_disabled_sandbox_says_so() -> None:
    described = Sandbox(False, Protections()).describe()
    assert described["enabled"] is False
    assert described["on"] == {}
    assert "turned off" in described["off"][0]


def test_forks_are_confined_only_with_root_mount_and_pid() -> None:
    assert _sandbox().forks_confined
    assert not _sandbox(root=False).forks_confined
    assert not _sandbox(namespaces=("mount",)).forks_confined
    assert not _sandbox(bubblewrap=None).execs_confined


def test_plan_binds_code_read_only_at_var_task_and_sizes_tmp(tmp_path: Path) -> None:
    confinement = _confinement(tmp_path, tmp_mb=700)
    prepared = _sandbox().prepare(confinement)
    plan = prepared.plan
    assert plan["task"] == str(confinement.code_dir)  # mounted read-only at /var/task
    assert ["/opt/py", "/opt/py", False] in plan["binds"]
    assert all(writable is False for _, _, writable in plan["binds"])
    assert plan["tmp_mb"] == 700
    assert plan["cwd"] == TASK_ROOT
    assert plan["namespaces"] == ["mount", "pid", "ipc", "uts"]  # egress on: no net namespace
    assert (plan["uid"], plan["gid"]) == (65534, 65534)
    assert plan["rlimits"]["nofile"] == [1024, 1024]
    # no cgroups here: the fallbacks are rlimits
    assert plan["as_extra_mb"] == 128 and plan["rlimits"]["nproc"] == [1024, 1024]
    # Nothing is made on the host for it: the child makes its staging folder if it needs it.
    assert plan["staging"] == str(confinement.run_dir / "root")
    assert not confinement.run_dir.exists()


def test_the_base_plan_a_zygote_builds_at_start_matches_every_environment_s(
    tmp_path: Path,
) -> None:
    sandbox = _sandbox()
    base = sandbox.base_plan(tmp_path / "run")
    assert base is not None and Path(base["base"]).is_dir()
    plan = sandbox.prepare(_confinement(tmp_path)).plan
    # the zygote builds its shared root once per [base, binds, links]: equal, or it
    # would build it again on the first environment
    assert [base[k] for k in ("base", "binds", "links")] == [
        plan[k] for k in ("base", "binds", "links")
    ]
    assert "mount" in base["namespaces"]
    assert _sandbox(root=False).base_plan(tmp_path / "run") is None  # children build none
    assert Sandbox(False, Protections()).base_plan(tmp_path / "run") is None


def test_egress_off_adds_a_network_namespace_and_forwards_the_runtime_api(tmp_path: Path) -> None:
    confinement = _confinement(tmp_path, egress=False, runtime_api="127.0.0.1:9001")
    plan = _sandbox().prepare(confinement).plan
    assert "net" in plan["namespaces"]
    assert plan["net_forward"] == "127.0.0.1:9001"


def test_prepare_makes_the_cgroup(tmp_path: Path) -> None:
    for controller in ("memory", "pids", "cpu"):
        (tmp_path / controller).mkdir()
    layout = CgroupLayout(1, tmp_path / "memory", tmp_path / "pids", tmp_path / "cpu")
    sandbox = _sandbox(cgroups=layout)
    # a plain folder has no control files: creating fails, and the plan falls back
    prepared = sandbox.prepare(_confinement(tmp_path))
    assert prepared.cgroup is None and prepared.plan["cgroups"] == []
    assert not (tmp_path / "memory" / "e1").exists()


def test_inside_shows_the_sandbox_s_folders(tmp_path: Path) -> None:
    confinement = _confinement(tmp_path)
    host_tmp = str(confinement.run_dir / "tmp")
    env = {"TMPDIR": host_tmp, "HOME": host_tmp, "LAMBDA_TASK_ROOT": str(confinement.code_dir),
           "MINE": host_tmp + "/x"}  # fmt: skip
    inside = confinement.inside(env)
    assert inside["TMPDIR"] == inside["HOME"] == "/tmp"
    assert inside["LAMBDA_TASK_ROOT"] == TASK_ROOT
    assert inside["MINE"] == host_tmp + "/x"  # the function's own values are its own
    assert confinement.inside_path(str(confinement.code_dir / "bootstrap")) == "/var/task/bootstrap"
    assert confinement.inside_path("/usr/bin/python3") == "/usr/bin/python3"


def test_bwrap_argv_joins_cgroups_then_drops_to_nobody(tmp_path: Path) -> None:
    sandbox = _sandbox()
    prepared = sandbox.prepare(_confinement(tmp_path))
    prepared.plan["cgroups"] = ["/cg/memory/e1/cgroup.procs"]
    argv = sandbox.bwrap_argv(["/var/task/bootstrap"], prepared)
    assert "--unshare-net" not in argv  # egress is on by default
    assert argv[:2] == ("/bin/sh", "-c")
    assert argv[4:6] == ("/cg/memory/e1/cgroup.procs", "--")
    bwrap = list(argv[6:])
    assert bwrap[0] == "/usr/bin/bwrap"
    for flag in (
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
    ):
        assert flag in bwrap
    tmpfs = bwrap.index("--tmpfs")
    assert bwrap[tmpfs - 4 : tmpfs + 2] == [
        "--size",
        str(512 << 20),
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
    ]
    assert "--ro-bind" in bwrap and TASK_ROOT in bwrap
    # parents of bind targets are made 0755 (bubblewrap's own default is 0700)
    var = bwrap.index("/var")
    assert bwrap[var - 3 : var] == ["--perms", "0755", "--dir"]
    assert bwrap[-1] == "/var/task/bootstrap"
    assert "--reuid=65534" in bwrap and "--no-new-privs" in bwrap


def test_runtime_dirs_keep_the_outermost_folders(tmp_path: Path) -> None:
    outer = tmp_path / "py"
    inner = outer / "lib"
    inner.mkdir(parents=True)
    dirs = _runtime_dirs([inner, outer, Path("/usr/lib/python3")])
    assert outer in dirs and inner not in dirs
    assert Path("/usr/lib/python3") not in dirs  # /usr is bound anyway


def test_function_pid_follows_the_chain_of_first_children() -> None:
    import subprocess
    import time

    from lamina.environments.sandbox import Prepared, SandboxedChild

    shell = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        children = Path(f"/proc/{shell.pid}/task/{shell.pid}/children")
        for _ in range(100):
            if children.read_text().split():
                break
            time.sleep(0.01)
        sleeper = int(children.read_text().split()[0])

        class _Child:
            pid = shell.pid

            async def wait(self) -> int:
                return 0

        assert SandboxedChild(_Child(), Prepared({}, None), depth=1).function_pid() == sleeper
        assert SandboxedChild(_Child(), Prepared({}, None), depth=2).function_pid() == 0
    finally:
        shell.kill()
        shell.wait()


def test_bwrap_with_egress_off_leaves_the_network_first_keeping_the_runtime_api(
    tmp_path: Path,
) -> None:
    sandbox = _sandbox()
    prepared = sandbox.prepare(_confinement(tmp_path, egress=False, runtime_api="127.0.0.1:9001"))
    argv = sandbox.bwrap_argv(["/var/task/bootstrap"], prepared)
    # the helper makes the network namespace (bubblewrap then stays in it) ...
    # -I: isolated, as it runs on the host as root with (most of) the function's variables
    assert argv[1] == "-I" and argv[3:6] == ("--no-egress", "127.0.0.1:9001", "--")
    assert argv[2].endswith("runtimes/python/sandbox.py")
    assert argv[6:8] == ("/bin/sh", "-c")
    assert "--unshare-net" not in argv
    # ... and without a Runtime API to forward, bubblewrap makes it itself
    bare = sandbox.prepare(_confinement(tmp_path, egress=False))
    assert "--unshare-net" in sandbox.bwrap_argv(["/var/task/bootstrap"], bare)
    # not root: no namespace of lamina's making, egress stays on (and /health says so)
    user = _sandbox(root=False)
    assert not user.egress_off and not user.describe()["on"]["egress_off"]
    assert "net" not in user.prepare(_confinement(tmp_path, egress=False)).plan["namespaces"]


def test_loader_variables_reach_the_function_only_inside_the_sandbox(tmp_path: Path) -> None:
    from lamina.environments.sandbox import host_env

    env = {"PATH": "/usr/bin", "LD_PRELOAD": "/var/task/x.so", "LD_LIBRARY_PATH": "/var/task/lib",
           "GCONV_PATH": "/var/task", "PYTHONPATH": "/var/task", "SECRET": "s3cr3t"}  # fmt: skip
    host, inside = host_env(env)
    assert host == {"PATH": "/usr/bin", "SECRET": "s3cr3t"}  # secrets stay out of argv
    assert set(inside) == {"LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "PYTHONPATH"}
    sandbox = _sandbox()
    argv = list(
        sandbox.bwrap_argv(["/var/task/bootstrap"], sandbox.prepare(_confinement(tmp_path)), inside)
    )
    # set by `env` after setpriv has dropped to nobody: not even setpriv loads them
    at = argv.index("LD_PRELOAD=/var/task/x.so")
    assert argv[at - 1] == "/usr/bin/env" and argv[-1] == "/var/task/bootstrap"
    assert argv.index("--no-new-privs") < at


def test_a_template_plan_leaves_the_pid_namespace_to_its_keeper(tmp_path: Path) -> None:
    sandbox = _sandbox(cgroups=None)
    plan = sandbox.prepare_template(_confinement(tmp_path, egress=False)).plan
    assert plan["template"] is True
    # the keeper stays in the host's PID namespace (its pids are lamina's); the
    # template it forks gets the new one
    assert "pid" not in plan["namespaces"] and plan["template_pid"] is True
    assert {"mount", "ipc", "uts", "net"} <= set(plan["namespaces"])
    assert plan["uid"] == 65534 and plan["task"].endswith("code/abc")
    assert "cgroup_root" not in plan  # no cgroups on this machine
