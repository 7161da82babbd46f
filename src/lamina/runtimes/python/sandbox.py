"""Entering an environment's sandbox from a forked zygote child (standard library only).

lamina describes the sandbox as a plain JSON "plan" (built by
lamina.environments.sandbox); this module carries it out in the child, before any
user code runs:

    zygote   forks the child in a PID namespace of its own (`PidNamespaces`), and
             reports its exit as the function's (`exit_code`).
    init     the child, PID 1 of that namespace: joins the environment's cgroups,
             sets rlimits, unshares mount/IPC/UTS (and network when egress is off,
             keeping a forwarder for the Runtime API), builds the root (the shared
             part once per zygote, `BaseRoot`; then the code read-only at /var/task,
             a sized tmpfs /tmp, a fresh /proc), pivots into it, forks the function,
             reaps orphans, and exits as the function did — when PID 1 exits, the
             kernel kills everything left in the namespace.
    function drops to an unprivileged uid with no capabilities and no_new_privs,
             and returns to the zygote's code to run the runtime.

All of them share the zygote child's process group, so lamina's killpg reaches them.

    python -s sandbox.py --probe   prints which of these steps this kernel allows

A SnapStart template's sandbox is made by its keeper: template_keeper.py.
"""

import ctypes
import json
import os
import platform
import resource
import signal
import socket
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = {
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
MADV_POPULATE_WRITE = 23  # Linux 5.14+
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
RLIMITS = {"nofile": "RLIMIT_NOFILE", "as": "RLIMIT_AS", "nproc": "RLIMIT_NPROC"}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


class SandboxError(OSError):
    pass


class _Libc:
    """The few system calls Python 3.10's os module lacks, through ctypes."""

    def __init__(self):
        self.lib = ctypes.CDLL(None, use_errno=True)

    def _check(self, result, what):
        if result != 0:
            errno = ctypes.get_errno()
            raise SandboxError(errno, f"{what}: {os.strerror(errno)}")

    def unshare(self, flags):
        self._check(self.lib.unshare(ctypes.c_int(flags)), "unshare")

    def mount(self, source, target, fstype, flags, data=None):
        result = self.lib.mount(_c(source), _c(target), _c(fstype), ctypes.c_ulong(flags), _c(data))
        self._check(result, f"mount {target}")

    def umount(self, target):
        self._check(self.lib.umount2(_c(target), ctypes.c_int(MNT_DETACH)), f"umount {target}")

    def pivot_root(self, new, old):
        number = SYS_PIVOT_ROOT.get(platform.machine())
        if number is None:
            raise SandboxError(38, "pivot_root: unknown system call number on this machine")
        self._check(self.lib.syscall(ctypes.c_long(number), _c(new), _c(old)), "pivot_root")

    def prctl(self, option, value):
        self._check(self.lib.prctl(option, ctypes.c_ulong(value), 0, 0, 0), "prctl")


def _c(text):
    return None if text is None else text.encode()


# ------------------------------------------------------------------------- keeper


class PidNamespaces:
    """A new PID namespace for the zygote's next child only: unshare(CLONE_NEWPID)
    before the fork (it applies to children), setns back to its own right after. The
    child is then PID 1 of its namespace with no process in between, one fork fewer."""

    def __init__(self, libc=None):
        self._libc = libc
        self._own = -1

    def before_fork(self, plan):
        """True if the next fork lands in a new PID namespace."""
        if "pid" not in plan.get("namespaces", ()):
            return False
        try:
            self._libc = self._libc or _Libc()
            if self._own < 0:
                self._own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            self._libc.unshare(CLONE_NEWPID)
        except OSError:
            return False
        return True

    def fds(self):
        """Descriptors a child must close (it has no business with the zygote's)."""
        return (self._own,) if self._own >= 0 else ()

    def after_fork(self):
        result = self._libc.lib.setns(self._own, CLONE_NEWPID)
        self._libc._check(result, "setns")


class ChildExits:
    """A pipe that becomes readable when a child exits (SIGCHLD through the wakeup fd),
    for a select() loop that also waits on sockets: the zygote's and a keeper's."""

    def __init__(self):
        self.read, self.write = os.pipe()
        os.set_blocking(self.read, False)
        os.set_blocking(self.write, False)
        signal.set_wakeup_fd(self.write)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def drain(self):
        try:
            while os.read(self.read, 512):
                pass
        except BlockingIOError:
            pass


def exit_code(status, sandboxed):
    """The code the zygote reports for a child: a sandbox's init exits 128+N when the
    function was killed by signal N (PID 1 cannot kill itself): report that as -N."""
    code = os.waitstatus_to_exitcode(status)
    if sandboxed and 128 < code < 128 + 65:
        return 128 - code
    return code


def enter(plan, libc=None):
    """Run in a forked child (PID 1 of its namespace when the zygote made one) before
    the runtime. Returns in the function's process only: this one becomes the
    namespace's init and exits as the function did."""
    libc = libc or _Libc()
    # A SnapStart template's keeper holds on to a few host things it needs later (the
    # host's /proc and cgroups, lamina's network), before the sandbox hides them.
    keeper = held = None
    if plan.get("template"):  # only ever from a zygote, where this module is a package's
        from . import template_keeper as keeper

        held = keeper.Held(plan)
    for procs in plan.get("cgroups", ()):
        _write(procs, str(os.getpid()))
    for name, limit in plan.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, RLIMITS[name]), tuple(limit))
    if plan.get("as_extra_mb"):
        # No memory cgroup: bound the address space instead, beyond what the fork
        # already maps (the zygote's interpreter and preloaded modules).
        limit = _vm_size() + (int(plan["as_extra_mb"]) << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    namespaces = plan.get("namespaces", ())
    try:
        flags = 0
        for name in namespaces:
            flags |= NAMESPACES[name] if name not in ("pid", "net") else 0
        if flags:
            libc.unshare(flags)
        if "mount" in namespaces:
            _build_root(plan, libc)
        if "uts" in namespaces and plan.get("hostname"):
            socket.sethostname(plan["hostname"])
        if "net" in namespaces:
            _enter_network(plan, libc)
    except BaseException as exc:
        sys.stderr.write(f"[lamina] the sandbox could not be entered: {exc}\n")
        sys.stderr.flush()
        os._exit(125)
    if keeper is not None:
        keeper.start_template(plan, libc, held)  # returns in the template only
        return
    if plan.get("init_above"):
        # A stem's: its PID 1 forked this process when it was parked, and waits for it.
        _become_unprivileged(plan, libc)
        return
    pid = os.fork()
    if pid == 0:
        _become_unprivileged(plan, libc)
        return
    run_init(pid)


def run_init(function_pid):
    """PID 1: runs no user code; reaps what is orphaned onto it until the function ends,
    then exits as the function did (the kernel then kills what is left in the
    namespace)."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        try:
            child, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(1)
        if child == function_pid:
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _enter_network(plan, libc):
    """A network namespace of its own (egress off). The Runtime API stays reachable: a
    forwarder forked before the switch stays in lamina's network and splices
    connections to the listening socket made inside onto the real Runtime API."""
    forward = plan.get("net_forward")
    ours = theirs = None
    if forward:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.fork() == 0:
            ours.close()
            _forward(forward, theirs)
            os._exit(0)
        theirs.close()
    libc.unshare(CLONE_NEWNET)
    _loopback_up()
    if ours is not None:
        _listen_for_runtime_api(forward, ours)


# ---------------------------------------------------------------------- templates
#
# A SnapStart template runs the function's init, so it must be as confined as the
# function: unprivileged, in its sandbox. But its forks become environments, and an
# unprivileged process can neither join their cgroups by path, nor report pids lamina
# can use (its own are its PID namespace's). So the template is two processes:
#
#   keeper    root, lamina's code only, outside the template's PID namespace; stands
#             between lamina and the template on the control socket: has each new
#             environment born in its cgroups (one fork at a time, the template in
#             them meanwhile), turns the template's pids into the host's, and (egress
#             off) forwards each environment's Runtime API port.
#   template  PID 1 of its own PID namespace, nobody, in the sandbox's root: runs init
#             and the fork protocol. Its environments share its namespaces (mount, so
#             /tmp; PID; network); each has cgroups of its own.


def prefault(ranges, libc=None):
    """Copy now the pages in `ranges` ([address, length], page-aligned) that this fork
    still shares with its zygote, as a write to each would, but in one system call a
    range and before anyone waits (lamina.environments.prefault). Failures only leave
    a page to be copied on its first write: a range not mapped here, an older kernel."""
    if not ranges:
        return
    madvise = (libc or _Libc()).lib.madvise
    for address, length in ranges:
        madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), MADV_POPULATE_WRITE)


def _become_unprivileged(plan, libc):
    uid, gid = plan.get("uid"), plan.get("gid")
    if gid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
    if uid is not None:
        os.setresuid(uid, uid, uid)  # every uid non-zero: the capabilities are gone too
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1)


class BaseRoot:
    """What every sandbox's root has in common (the system folders, the runtimes, /dev),
    built once in the zygote's own mount namespace. A child's copy of that namespace
    then needs only its code, /tmp, /dev/shm and /proc: 5 mounts instead of ~35."""

    def __init__(self, libc=None):
        self._libc = libc
        self._key = None
        self._path = None

    @property
    def pending(self):
        """Whether the zygote has not yet moved into its own mount namespace."""
        return self._key is None

    def ensure(self, plan):
        """In the zygote, before it forks: build the plan's base root if it is not built
        (or was built for other binds), and mark the plan to use it."""
        base = plan.get("base")
        if not base or self._key == "failed" or "mount" not in plan.get("namespaces", ()):
            return
        key = json.dumps([base, plan.get("binds"), plan.get("links")])
        if key != self._key:
            try:
                libc = self._libc = self._libc or _Libc()
                if self._key is None:
                    libc.unshare(CLONE_NEWNS)  # the zygote's own: lamina's mounts are untouched
                    libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
                elif self._path:
                    libc.umount(self._path)
                _build_base(plan, libc, base)
                self._key, self._path = key, base
            except OSError as exc:
                sys.stderr.write(
                    f"[lamina] no shared sandbox root ({exc}); each child builds its own\n"
                )
                self._key = "failed"
                return
        plan["base_ready"] = True


def _build_base(plan, libc, root):
    _mkdirs(root)
    libc.mount("lamina", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for source, target in plan.get("links", ()):
        os.symlink(source, root + target)
    for source, target, writable in plan.get("binds", ()):
        _bind(libc, source, root + target, writable)
    _make_dev(libc, root + "/dev")
    for folder in ("/var/task", "/tmp", "/proc", "/dev/shm"):
        _mkdirs(root + folder)
    libc.mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _build_root(plan, libc):
    if plan.get("base_ready"):
        root = plan["base"]  # built by the zygote; this namespace is a private copy of its
    else:
        libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
        root = plan["staging"]  # an empty folder of lamina's that hides none of the sources
        _build_base(plan, libc, root)
    _bind(libc, plan["task"], root + "/var/task", False)
    tmp_mb = int(plan.get("tmp_mb", 512))
    libc.mount("tmp", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
    # lamina itself (its runtime, an interpreter) may live under the host's /tmp: the
    # private /tmp just mounted hides those binds, so they are made again on top of it.
    for source, target, writable in plan.get("binds", ()):
        if target.startswith("/tmp/"):
            _bind(libc, source, root + target, writable)
    libc.mount("shm", root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    if "pid" in plan.get("namespaces", ()):
        libc.mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(root)
    libc.pivot_root(".", ".")
    libc.umount(".")  # the old root, stacked under the new one by pivot_root(".", ".")
    os.chdir(plan.get("cwd", "/"))


def _bind(libc, source, target, writable):
    if os.path.isdir(source):
        if not os.path.isdir(target):
            _mkdirs(target)
    else:
        _mkdirs(os.path.dirname(target))
        if not os.path.exists(target):
            open(target, "w").close()
    libc.mount(source, target, None, MS_BIND | MS_REC)
    if not writable:
        libc.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _make_dev(libc, dev):
    _mkdirs(dev)
    libc.mount("dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            open(f"{dev}/{name}", "w").close()
            libc.mount("/dev/" + name, f"{dev}/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, f"{dev}/{name}")


def _mkdirs(path):
    os.makedirs(path, mode=0o755, exist_ok=True)


def _vm_size():
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _write(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# ------------------------------------------------------------------------ network


def _loopback_up():
    import fcntl

    siocsifflags, iff_up_running = 0x8914, 0x1 | 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", iff_up_running))


def _listen_for_runtime_api(address, channel):
    """Inside the new network namespace: listen on the Runtime API's host:port and hand
    the listening socket to the keeper, which is still in lamina's namespace."""
    host, port = address.rsplit(":", 1)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(64)
    socket.send_fds(channel, [b"L"], [server.fileno()])
    server.close()
    channel.close()


def _forward(address, channel, watched=-1):
    """In lamina's network namespace: accept the function's connections on the listening
    socket made inside its namespace and splice them to the Runtime API. Runs until the
    sandbox's PID namespace goes (its init's exit kills it), or until the process that
    `watched` (a pidfd) refers to ends."""
    import select

    try:
        _, fds, _, _ = socket.recv_fds(channel, 1, 1)
    except OSError:
        fds = []
    channel.close()
    if not fds:
        return
    listener = socket.socket(fileno=fds[0])
    host, port = address.rsplit(":", 1)
    peers = {}
    extra = [watched] if watched >= 0 else []
    while True:
        try:
            readable, _, _ = select.select([listener, *peers, *extra], [], [])
        except InterruptedError:
            continue
        if watched in readable:
            return  # the sandbox is gone
        for sock in readable:
            if sock is listener:
                inner, _ = listener.accept()
                try:
                    outer = socket.create_connection((host, int(port)))
                except OSError:
                    inner.close()
                    continue
                peers[inner], peers[outer] = outer, inner
                continue
            splice(sock, peers)


def splice(sock, peers):
    """Pass what `sock` has to its peer in `peers` (both directions are in it); when
    either side ends or fails, close both and forget them."""
    other = peers.get(sock)
    if other is None:
        return
    try:
        data = sock.recv(65536)
    except OSError:
        data = b""
    if data:
        try:
            other.sendall(data)
            return
        except OSError:
            pass
    for end in (sock, other):
        peers.pop(end, None)
        end.close()


def exec_without_egress(address, argv, libc=None):
    """For an exec'd environment (bubblewrap) with egress off: this process leaves
    lamina's network for one with only loopback, listening there on the Runtime API's
    host:port, then execs `argv` (the cgroup-joining `sh`, then bubblewrap, which stays
    in this network). A forwarder left behind in lamina's network splices each
    connection to the real Runtime API, as for a forked environment.

    The forwarder is a grandchild, not a child: bubblewrap (what this process becomes)
    then has the sandbox as its only child. It ends with this process (a pidfd), and is
    in its process group, so lamina's kill reaches it; it joins no cgroup of the
    function's (`sh` joins them after this), so its memory is not the function's."""
    libc = libc or _Libc()
    watched = os.pidfd_open(os.getpid())
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            ours.close()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # not the function's log pipe: its end is the function's
                os.dup2(devnull, fd)
            try:
                _forward(address, theirs, watched)
            finally:
                os._exit(0)
        os._exit(0)
    os.waitpid(middle, 0)
    theirs.close()
    os.close(watched)
    libc.unshare(CLONE_NEWNET)
    _loopback_up()
    _listen_for_runtime_api(address, ours)
    os.execvp(argv[0], argv)


# -------------------------------------------------------------------------- probe


def probe():
    """What this kernel lets lamina do, each step tried in a throwaway child."""
    libc = _Libc()
    found = {"euid": os.geteuid()}
    for name, flag in NAMESPACES.items():
        found[name] = _try_in_child(lambda flag=flag: libc.unshare(flag))
    found["pivot_root"] = platform.machine() in SYS_PIVOT_ROOT
    return found


def _try_in_child(step):
    pid = os.fork()
    if pid == 0:
        try:
            step()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        print(json.dumps(probe()))
    elif len(sys.argv) > 4 and sys.argv[1] == "--no-egress" and sys.argv[3] == "--":
        # python sandbox.py --no-egress HOST:PORT -- argv...: see exec_without_egress.
        try:
            exec_without_egress(sys.argv[2], sys.argv[4:])
        except OSError as exc:
            sys.stderr.write(f"[lamina] the sandbox could not be entered: {exc}\n")
            sys.exit(125)
    elif len(sys.argv) > 2 and sys.argv[1] == "--exec":
        # python sandbox.py --exec '<plan json>' argv...: as a zygote does it (a child in
        # a PID namespace of its own enters the plan), then exec; ends as the function.
        plan = json.loads(sys.argv[2])
        namespaces = PidNamespaces()
        sandboxed = namespaces.before_fork(plan)
        pid = os.fork()
        if pid == 0:
            enter(plan)
            os.execvp(sys.argv[3], sys.argv[3:])
        if sandboxed:
            namespaces.after_fork()
        code = exit_code(os.waitpid(pid, 0)[1], True)
        if code < 0:
            os.kill(os.getpid(), -code)
        sys.exit(code)
