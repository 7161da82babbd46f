"""The sandbox every environment runs in, and what this machine allows of it.

At start-up `probe_sandbox` finds out which protections the kernel grants (namespaces,
cgroups, bubblewrap); `Sandbox.describe()` says so plainly (printed at start-up, and in
`GET /health`). lamina runs whatever is missing; it never refuses to start.

Inside, an environment sees: its code read-only at /var/task, the system folders and
lamina's runtime and interpreters read-only, a private tmpfs /tmp sized by
EphemeralStorage, a fresh /proc of its own PID namespace, a minimal /dev — and not
lamina's data dir, other functions' code, /root or lamina's environment. It runs as
an unprivileged uid with no capabilities, in a cgroup sized by MemorySize (RLIMIT_AS
when there is no memory cgroup), with a pids limit, RLIMIT_NOFILE and a CPU share.

Three ways in, one plan:
- a Python environment forked from a zygote enters it itself, in the child, before the
  runtime starts (runtimes/python/sandbox.py carries out `Prepared.plan`);
- an exec'd environment (custom runtimes, the fallback) runs under bubblewrap, behind a
  `sh` that first joins the cgroups and sets the rlimits (and, egress off, behind a
  helper that leaves lamina's network first, keeping a Runtime API forwarder outside);
- a SnapStart template runs the function's init in it, behind a root keeper that
  places the environments forked from it (`prepare_template`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from lamina.environments import cgroups
from lamina.environments.cgroups import CgroupLayout, EnvironmentCgroup

log = logging.getLogger("lamina.sandbox")

RUNTIME_SANDBOX = Path(__file__).resolve().parent.parent / "runtimes" / "python" / "sandbox.py"
RUNTIMES_DIR = RUNTIME_SANDBOX.parent.parent
TASK_ROOT = "/var/task"
NAMESPACES = ("mount", "pid", "ipc", "uts", "net")
# The user functions run as ("nobody"): owns nothing on the host.
UID = GID = 65534
NOFILE = 1024  # Lambda's file-descriptor limit
SYSTEM_DIRS = ("/usr", "/etc")  # not /opt: that is where layers go
ROOT_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # often links into /usr
# /etc files a function has no business reading, hidden even though it runs as nobody.
HIDDEN_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers")
OOM_ERROR = "Runtime.OutOfMemory"
# Variables that change what the dynamic loader, libc or Python load: a function may
# set them (LD_LIBRARY_PATH, LD_PRELOAD are Lambda's to extend), but an exec'd
# environment's first processes (`sh`, bubblewrap, the egress helper) run on the host
# as root, so these reach the function inside the sandbox only (`--setenv`).
LOADER_VARIABLES = ("GCONV_PATH", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
                    "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TZDIR", "BASH_ENV", "ENV")  # fmt: skip


class Child(Protocol):
    pid: int

    async def wait(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Confinement:
    """One environment's sandbox, as the launcher describes it (pure data)."""

    env_id: str
    code_dir: Path  # mounted read-only at /var/task
    run_dir: Path  # lamina's per-environment folder (the staging point for the root)
    memory_mb: int
    tmp_mb: int
    egress: bool = True
    runtime_api: str = ""  # host:port; forwarded into the namespace when egress is off

    def inside(self, env: Mapping[str, str]) -> dict[str, str]:
        """The environment variables with the folders as the sandbox shows them."""
        host_tmp = str(self.run_dir / "tmp")
        out = {k: "/tmp" if v == host_tmp else v for k, v in env.items()}
        out["LAMBDA_TASK_ROOT"] = TASK_ROOT
        return out

    def inside_path(self, path: str) -> str:
        """A host path under the code folder as the sandbox sees it (at /var/task)."""
        code = str(self.code_dir)
        if path == code or path.startswith(code + "/"):
            return TASK_ROOT + path[len(code) :]
        return path


@dataclass(frozen=True, slots=True)
class Protections:
    """What the kernel allowed at start-up."""

    namespaces: tuple[str, ...] = ()
    cgroups: CgroupLayout | None = None
    bubblewrap: str | None = None
    setpriv: str | None = None
    root: bool = False
    pivot_root: bool = False
    errors: tuple[str, ...] = ()


class StemUnusable(Exception):
    """A parked stem cannot take this environment: start it the ordinary way."""


@dataclass(slots=True)
class Prepared:
    """A confinement made real: its cgroup exists; `plan` is for the child to carry out."""

    plan: dict[str, Any]
    cgroup: EnvironmentCgroup | None

    def release(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()


@dataclass(slots=True)
class Sandbox:
    enabled: bool
    protections: Protections
    # Read-only extras every environment sees at the same path: interpreters' prefixes,
    # lamina's runtimes, the libraries lamina lends functions.
    runtime_dirs: tuple[Path, ...] = ()
    _links: tuple[tuple[str, str], ...] = field(default=())
    # The interpreter that runs runtimes/python/sandbox.py on the host side of an exec'd
    # environment with egress off (it leaves the network, leaving a forwarder behind).
    python: str = sys.executable
    # What every environment sees read-only (`_binds`), worked out once: a stat per folder.
    _bound: list[list[Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def forks_confined(self) -> bool:
        """Whether a zygote child can build its own root (root, mount + pid namespaces)."""
        p = self.protections
        return self.enabled and p.root and p.pivot_root and {"mount", "pid"} <= set(p.namespaces)

    @property
    def execs_confined(self) -> bool:
        return (
            self.enabled
            and self.protections.bubblewrap is not None
            and "mount" in self.protections.namespaces
        )

    @property
    def egress_off(self) -> bool:
        """Whether a function's egress can be turned off: a network namespace, and root
        to make it (the forwarder that keeps the Runtime API reachable stays outside)."""
        p = self.protections
        return (
            self.enabled
            and p.root
            and "net" in p.namespaces
            and (self.forks_confined or self.execs_confined)
        )

    def describe(self) -> dict[str, Any]:
        """For the start-up banner and `GET /health`: what is on, what is off and why."""
        p = self.protections
        layout = p.cgroups
        on = {
            # "net" is used for functions with egress off (network is on by default)
            "namespaces": list(p.namespaces) if self.enabled else [],
            "egress_off": self.egress_off,
            "filesystem": self.forks_confined or self.execs_confined,
            "unprivileged_user": self.enabled and p.root,
            "memory_limit": "cgroup" if layout and layout.memory else "rlimit_as",
            "pids_limit": "cgroup" if layout and layout.pids else "off",
            "cpu_share": "cgroup" if layout and layout.cpu else "off",
            "open_files_limit": NOFILE,
        }
        off: list[str] = []
        if not self.enabled:
            off.append("the sandbox is turned off (LAMINA_SANDBOX=off)")
        else:
            off.extend(
                f"{ns} namespace: denied by the kernel"
                for ns in NAMESPACES
                if ns not in p.namespaces
            )
            if not p.root:
                off.append(
                    "lamina is not root: functions run as lamina's user, forked ones without a private root"
                )
            if p.bubblewrap is None:
                off.append(
                    "bubblewrap not found: exec'd environments (custom runtimes) run unconfined"
                )
            if layout is None or layout.memory is None:
                off.append(
                    "no memory cgroup: memory is bounded by RLIMIT_AS only (no Max Memory Used peak)"
                )
            if layout is None or layout.pids is None:
                off.append("no pids cgroup: fork bombs are bounded by RLIMIT_NPROC only")
            if layout is None or layout.cpu is None:
                off.append("no cpu cgroup: CPU is not shared by memory size")
            if self.forks_confined:
                off.append(
                    "SnapStart environments of one version share their template's /tmp, PID "
                    "and network namespaces (each has its own cgroups)"
                )
        return {
            "enabled": self.enabled,
            "cgroups": layout.describe() if layout else None,
            "bubblewrap": p.bubblewrap,
            "on": on if self.enabled else {},
            "off": off,
            "errors": list(p.errors),
        }

    async def close(self) -> None:
        """Remove this lamina's cgroups once the environments' processes are gone."""
        layout = self.protections.cgroups
        if layout is None:
            return
        parents = {p for p in (layout.memory, layout.pids, layout.cpu) if p is not None}
        for _ in range(20):
            layout.sweep()
            for parent in parents:
                with contextlib.suppress(OSError):
                    parent.rmdir()
            if not any(p.exists() for p in parents):
                return
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ per start

    def stem_cgroup(self, name: str) -> EnvironmentCgroup | None:
        """Unsized groups for a stem to join ahead of need (environments/stems.py)."""
        if self.protections.cgroups is None:
            return None
        try:
            return self.protections.cgroups.make(name)
        except OSError as exc:
            log.debug("no cgroup for stem %s: %s", name, exc)
            return None

    def prepare(self, confinement: Confinement, stem: EnvironmentCgroup | None = None) -> Prepared:
        """Create the environment's cgroup and the plan a forked child carries out.

        With `stem`, the groups a stem process already joined become the environment's:
        they are sized now and the child has none to join."""
        p = self.protections
        cgroup = None
        if stem is not None and p.cgroups is not None:
            try:
                p.cgroups.size(stem, confinement.memory_mb)
                cgroup = stem
            except OSError as exc:
                stem.remove()
                raise StemUnusable(f"sizing the stem's cgroup: {exc}") from exc
        elif p.cgroups is not None:
            try:
                cgroup = p.cgroups.create(confinement.env_id, confinement.memory_mb)
            except OSError as exc:
                log.warning(
                    "cgroup for %s: %s; limits fall back to rlimits", confinement.env_id, exc
                )
        namespaces: list[str] = [ns for ns in ("mount", "pid", "ipc", "uts") if ns in p.namespaces]
        if not confinement.egress and "net" in p.namespaces and p.root:
            namespaces.append("net")
        rlimits: dict[str, list[int]] = {"nofile": [NOFILE, NOFILE]}
        plan: dict[str, Any] = {
            "cgroups": cgroup.procs_files if cgroup and cgroup is not stem else [],
            "rlimits": rlimits,
            "namespaces": namespaces,
            "hostname": "169.254.0.1" if "uts" in namespaces else "",
            "staging": str(confinement.run_dir / "root"),
            **self._base(confinement.run_dir.parent),
            "task": str(confinement.code_dir),
            "tmp_mb": confinement.tmp_mb,
            "cwd": TASK_ROOT,
        }
        if cgroup is None or cgroup.memory is None:
            plan["as_extra_mb"] = confinement.memory_mb
        if cgroup is None or cgroup.pids is None:
            rlimits["nproc"] = [cgroups.PIDS_MAX, cgroups.PIDS_MAX]
        if "net" in namespaces and confinement.runtime_api:
            plan["net_forward"] = confinement.runtime_api
        if p.root:
            plan["uid"], plan["gid"] = UID, GID
        # No folder is made here: the zygote makes its shared root's, and a child that
        # cannot use that root makes its staging folder itself.
        return Prepared(plan, cgroup)

    def base_plan(self, run_root: Path) -> dict[str, Any] | None:
        """What every environment's root has in common, for a zygote to build when it
        starts rather than on its first fork (BaseRoot, runtimes/python/sandbox.py); None
        where forked children get no mount namespace."""
        if not self.forks_confined or "mount" not in self.protections.namespaces:
            return None
        plan = {"namespaces": ["mount"], **self._base(run_root)}
        Path(plan["base"]).mkdir(parents=True, exist_ok=True)
        return plan

    def _base(self, run_root: Path) -> dict[str, Any]:
        """The plan's keys a zygote builds its shared root from: equal for every
        environment under `run_root`, or the zygote would build it again."""
        return {
            "links": [list(link) for link in self._links],
            "binds": self._binds(),
            # Built once by each zygote and shared by its children (see BaseRoot).
            "base": str(run_root / ".sandbox-root"),
        }

    def prepare_template(self, confinement: Confinement) -> Prepared:
        """The sandbox a SnapStart template runs the function's init in: an
        environment's, carried out by a keeper that stays root outside the template's
        PID namespace (runtimes/python/sandbox.py, templates)."""
        prepared = self.prepare(confinement)
        plan = prepared.plan
        plan["template"] = True
        if "pid" in plan["namespaces"]:  # the keeper makes it for the template, not for itself
            plan["namespaces"].remove("pid")
            plan["template_pid"] = True
        if self.protections.cgroups is not None:
            plan["cgroup_root"] = str(cgroups.CGROUP_ROOT)
        return prepared

    def _binds(self) -> list[list[Any]]:
        """What every environment sees read-only (its code comes on top, at /var/task).
        Shared by every plan: nothing changes a plan's binds."""
        if self._bound is None:
            self._bound = self._find_binds()
        return self._bound

    def _find_binds(self) -> list[list[Any]]:
        system = [*SYSTEM_DIRS, *(d for d in ROOT_DIRS if not os.path.islink(d))]
        binds: list[list[Any]] = [[d, d, False] for d in system if os.path.isdir(d)]
        binds += [[str(d), str(d), False] for d in self.runtime_dirs]
        binds += [["/dev/null", f, False] for f in HIDDEN_FILES if Path(f).exists()]
        return binds

    def bwrap_argv(
        self, argv: Iterable[str], prepared: Prepared, inside_env: Mapping[str, str] | None = None
    ) -> tuple[str, ...]:
        """An exec'd environment's argv under bubblewrap, behind a `sh` that joins the
        cgroups and sets the rlimits first (bubblewrap does neither). `inside_env`: the
        variables set inside only (`host_env`)."""
        p, plan = self.protections, prepared.plan
        assert p.bubblewrap is not None
        limits = f"ulimit -n {NOFILE}"
        if "as_extra_mb" in plan:
            limits += f"; ulimit -v {(int(plan['as_extra_mb']) + 256) * 1024}"
        script = (
            'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; '
            f'{limits}; exec "$@"'
        )
        args = [p.bubblewrap, "--die-with-parent"]
        # "net" with a Runtime API to reach: made before bubblewrap (`--no-egress` below).
        forward = plan.get("net_forward") if "net" in plan["namespaces"] else None
        args += [
            f"--unshare-{ns}"
            for ns in plan["namespaces"]
            if ns != "mount" and not (ns == "net" and forward)
        ]
        if plan["hostname"]:
            args += ["--hostname", plan["hostname"]]
        for source, target in plan["links"]:
            args += ["--symlink", source, target]
        made: set[str] = {"/"}
        for source, target, _ in [*plan["binds"], [plan["task"], TASK_ROOT, False]]:
            # bubblewrap makes missing parents 0700: make them 0755 first.
            for parent in reversed(Path(target).parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", source, target]
            made.add(target)
        args += ["--dev", "/dev", "--proc", "/proc"]
        args += ["--size", str(int(plan["tmp_mb"]) << 20), "--perms", "1777", "--tmpfs", "/tmp"]
        # Binds under the host's /tmp (lamina may be installed there) are hidden by the
        # private /tmp: bind them again on top of it.
        for source, target, _ in plan["binds"]:
            if target.startswith("/tmp/"):
                args += ["--ro-bind", source, target]
        args += ["--remount-ro", "/", "--chdir", TASK_ROOT]
        if "uid" in plan and p.setpriv is not None:
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--", p.setpriv]
            args += [
                f"--reuid={plan['uid']}",
                f"--regid={plan['gid']}",
                "--clear-groups",
                "--no-new-privs",
            ]
        args.append("--")
        if inside_env:
            # Set last, by `env` as the function's user: not even setpriv runs with them.
            args += ["/usr/bin/env", *(f"{k}={v}" for k, v in inside_env.items())]
        confined = ("/bin/sh", "-c", script, "sh", *plan["cgroups"], "--", *args, *argv)
        if forward:
            # Egress off: a helper leaves lamina's network first, keeping a forwarder to
            # the Runtime API outside (runtimes/python/sandbox.py, exec_without_egress).
            helper = (self.python, "-I", str(RUNTIME_SANDBOX), "--no-egress", forward, "--")
            return (*helper, *confined)
        return confined


def host_env(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """An exec'd environment's variables split in two: those safe for the host-side
    processes that run as root before the sandbox, and those for inside only."""
    host: dict[str, str] = {}
    inside: dict[str, str] = {}
    for name, value in env.items():
        unsafe = name.startswith(("LD_", "MALLOC_", "PYTHON")) or name in LOADER_VARIABLES
        (inside if unsafe else host)[name] = value
    return host, inside


class SandboxedChild:
    """An environment's process and its cgroup: `wait()` as before; the cgroup answers
    for its peak memory and whether the OOM killer ended it, and goes with it."""

    def __init__(self, child: Child, prepared: Prepared, depth: int = 1) -> None:
        self._child = child
        self._prepared = prepared
        self._depth = depth  # processes between `pid` and the function
        self.pid = child.pid
        self._oom: bool | None = None
        self._peak: int | None = None
        # Told the function's pid once its first invocation has ended (prefault.py).
        self.on_started: Callable[[int], None] | None = None

    async def wait(self) -> int:
        code = await self._child.wait()
        # Read what the group knows before it goes.
        if self._oom is None:
            self._oom = self._prepared.cgroup is not None and self._prepared.cgroup.oom_killed()
        if self._peak is None:
            self._peak = self.peak_memory_mb()
        # Everything in the group dies with the process group, a moment later.
        for _ in range(50):
            if self._prepared.cgroup is None or self._prepared.cgroup.remove():
                break
            await asyncio.sleep(0.05)
        return code

    def kill(self) -> None:
        kill = getattr(self._child, "kill", None)
        if callable(kill):
            kill()

    def started(self) -> None:
        """Its first invocation has ended."""
        if self.on_started is not None:
            on_started, self.on_started = self.on_started, None
            on_started(self.function_pid())

    def function_pid(self) -> int:
        """The function's own pid on the host (for its memory figures): `pid` is its
        PID namespace's init when forked, bubblewrap (whose init is between) when
        exec'd. 0 when it is not running."""
        pid = self.pid
        for _ in range(self._depth):
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as children:
                    first = children.read().split()
            except OSError:
                return 0
            if not first:
                return 0
            pid = int(first[0])
        return pid

    def out_of_memory(self) -> bool:
        """Whether the environment was killed for exceeding its memory (after `wait`)."""
        if self._oom is None and self._prepared.cgroup is not None:
            return self._prepared.cgroup.oom_killed()
        return bool(self._oom)

    def peak_memory_path(self) -> str | None:
        """Where the cgroup's peak is read, for a reader that keeps the file open."""
        cgroup = self._prepared.cgroup
        path = cgroup.peak_file if cgroup is not None else None
        return str(path) if path is not None else None

    def peak_memory_mb(self) -> int:
        """Max Memory Used: the cgroup's peak (0 when there is no memory cgroup)."""
        if self._peak is not None:
            return self._peak
        if self._prepared.cgroup is None:
            return 0
        return self._prepared.cgroup.peak_bytes() >> 20


# ------------------------------------------------------------------------ probe


async def probe_sandbox(
    enabled: bool,
    python: str = sys.executable,
    runtime_dirs: Iterable[Path] = (),
    cgroup_layout: CgroupLayout | Literal["probe"] | None = "probe",
) -> Sandbox:
    """Try each protection once (in a throwaway child process) and return the policy.
    `cgroup_layout` given: use it (a worker's, inside the primary's: serving/)."""
    if not enabled or not sys.platform.startswith("linux"):
        return Sandbox(False, Protections(), _runtime_dirs(runtime_dirs))
    errors: list[str] = []
    found: Mapping[str, Any] = {}
    try:
        process = await asyncio.create_subprocess_exec(
            python, "-s", str(RUNTIME_SANDBOX), "--probe",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 20)
        found = orjson.loads(out) if process.returncode == 0 else {}
        if process.returncode != 0:
            errors.append(f"probe failed: {err.decode(errors='replace').strip()[-300:]}")
    except (OSError, TimeoutError, orjson.JSONDecodeError) as exc:
        errors.append(f"probe failed: {exc}")
    layout = (
        await asyncio.to_thread(cgroups.probe) if cgroup_layout == "probe" else cgroup_layout
    )
    protections = Protections(
        namespaces=tuple(ns for ns in NAMESPACES if found.get(ns)),
        cgroups=layout,
        bubblewrap=shutil.which("bwrap"),
        setpriv=shutil.which("setpriv"),
        root=found.get("euid") == 0,
        pivot_root=bool(found.get("pivot_root")),
        errors=tuple(errors),
    )
    return Sandbox(True, protections, _runtime_dirs(runtime_dirs), _root_links(), python)


def _runtime_dirs(extra: Iterable[Path]) -> tuple[Path, ...]:
    """Folders to bind read-only, outermost only (a folder inside another is covered)."""
    dirs = sorted({Path(d).resolve() for d in (RUNTIMES_DIR, *extra)})
    kept: list[Path] = []
    for d in dirs:
        if any(d.is_relative_to(k) for k in kept) or any(d.is_relative_to(s) for s in SYSTEM_DIRS):
            continue
        kept.append(d)
    return tuple(kept)


def _root_links() -> tuple[tuple[str, str], ...]:
    """/bin, /lib, ... as the host has them: symlinks into /usr (merged /usr), else binds."""
    links = []
    for name in ROOT_DIRS:
        with contextlib.suppress(OSError):
            if os.path.islink(name):
                links.append((os.readlink(name), name))
    return tuple(links)


def interpreter_prefixes(interpreters: Iterable[str]) -> list[Path]:
    """Each interpreter's installation folder (…/bin/python3.X -> …)."""
    return [Path(p).resolve().parent.parent for p in interpreters]
