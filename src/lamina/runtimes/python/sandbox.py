"""Entering an environment's sandbox from a forked zygote child (standard library only).

lamina describes the sandbox as a plain JSON "plan" (built by
lamina.environments.sandbox); this module carries it out in the child, before any
user code runs:

    keeper   the zygote's child, still in the host's PID namespace: joins the
             environment's cgroups, sets rlimits, unshares mount/PID/IPC/UTS (and
             network when egress is off), forks `init`, and ends with init's status
             (re-raising the function's signal, so lamina sees what it always saw).
    init     PID 1 of the new PID namespace: builds the root (tmpfs, read-only binds
             of the system, the runtime and the code at /var/task, a sized tmpfs
             /tmp, a fresh /proc), pivots into it, forks the function, reaps orphans,
             and reports the function's wait status to the keeper before exiting —
             when PID 1 exits, the kernel kills everything left in the namespace.
    function drops to an unprivileged uid with no capabilities and no_new_privs,
             and returns to the zygote's code to run the runtime.

All three share the keeper's process group, so lamina's killpg reaches them all.

    python -s sandbox.py --probe   prints which of these steps this kernel allows
"""

import ctypes
import json
import os
import platform
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


def enter(plan, libc=None):
    """Run in a forked child before the runtime. Returns in the function's process only;
    the keeper and init never return (they exit with the function's status)."""
    libc = libc or _Libc()
    for procs in plan.get("cgroups", ()):
        _write(procs, str(os.getpid()))
    import resource

    for name, limit in plan.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, RLIMITS[name]), tuple(limit))
    if plan.get("as_extra_mb"):
        # No memory cgroup: bound the address space instead, beyond what the fork
        # already maps (the zygote's interpreter and preloaded modules).
        limit = _vm_size() + (int(plan["as_extra_mb"]) << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    flags = 0
    for name in plan.get("namespaces", ()):
        # The keeper stays in lamina's network: it forwards the Runtime API into init's.
        flags |= NAMESPACES[name] if name != "net" else 0
    if flags:
        libc.unshare(flags)
    status_read, status_write = os.pipe()
    listener, status = None, None
    if plan.get("net_forward"):
        listener, listener_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        os.close(status_read)
        if listener is not None:
            listener.close()
            listener = listener_theirs
        return _init(plan, libc, status_write, listener)
    os.close(status_write)
    if listener is not None:
        listener_theirs.close()
        status = _forward(plan["net_forward"], listener, pid)  # returns once init is gone
    _keep(pid, status_read, status)


def _keep(init_pid, status_read, status=None):
    """The keeper: wait for init, then end the way the function ended."""
    while status is None:
        try:
            _, status = os.waitpid(init_pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            status = 0
            break
    try:
        report = os.read(status_read, 4)
    except OSError:
        report = b""
    if len(report) == 4:
        status = struct.unpack("i", report)[0]
    _exit_like(status)


def _exit_like(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        sys.stdout.flush()
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be handled
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


# --------------------------------------------------------------------------- init


def _init(plan, libc, status_write, listener):
    """PID 1 of the namespace (or just the sandboxed process without a PID namespace)."""
    try:
        if "mount" in plan.get("namespaces", ()):
            _build_root(plan, libc)
        if "uts" in plan.get("namespaces", ()) and plan.get("hostname"):
            socket.sethostname(plan["hostname"])
        if "net" in plan.get("namespaces", ()):
            libc.unshare(CLONE_NEWNET)
            _loopback_up()
            if listener is not None:
                _listen_for_runtime_api(plan["net_forward"], listener)
    except BaseException as exc:
        sys.stderr.write(f"[lamina] the sandbox could not be entered: {exc}\n")
        sys.stderr.flush()
        os._exit(125)
    pid = os.fork()
    if pid == 0:
        os.close(status_write)
        _become_unprivileged(plan, libc)
        return
    # PID 1: no user code; reap whatever is orphaned onto us until the function ends.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        try:
            child, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(0)
        if child == pid:
            os.write(status_write, struct.pack("i", status))
            os._exit(0)


def _become_unprivileged(plan, libc):
    uid, gid = plan.get("uid"), plan.get("gid")
    if gid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
    if uid is not None:
        os.setresuid(uid, uid, uid)  # every uid non-zero: the capabilities are gone too
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1)


def _build_root(plan, libc):
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = plan["staging"]  # an empty folder of lamina's that hides none of the sources
    libc.mount("lamina", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for source, target in plan.get("links", ()):
        os.symlink(source, root + target)
    for source, target, writable in plan.get("binds", ()):
        _bind(libc, source, root + target, writable)
    _make_dev(libc, root + "/dev")
    tmp_mb = int(plan.get("tmp_mb", 512))
    _mkdirs(root + "/tmp")
    libc.mount("tmp", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
    _mkdirs(root + "/proc")
    if "pid" in plan.get("namespaces", ()):
        libc.mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(root)
    libc.pivot_root(".", ".")
    libc.umount(".")  # the old root, stacked under the new one by pivot_root(".", ".")
    os.chdir("/")
    libc.mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(plan.get("cwd", "/"))


def _bind(libc, source, target, writable):
    if os.path.isdir(source):
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
    _mkdirs(dev + "/shm")
    libc.mount("shm", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")


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


def _forward(address, channel, init_pid):
    """The keeper, in lamina's network namespace: accept the function's connections on
    the listening socket made inside its namespace and splice them to the Runtime API.
    Returns init's wait status once it is gone (None if forwarding never started)."""
    import select

    try:
        _, fds, _, _ = socket.recv_fds(channel, 1, 1)
    except OSError:
        fds = []
    channel.close()
    if not fds:
        return None
    listener = socket.socket(fileno=fds[0])
    host, port = address.rsplit(":", 1)
    init_fd = os.pidfd_open(init_pid)
    peers = {}
    while True:
        try:
            readable, _, _ = select.select([listener, init_fd, *peers], [], [])
        except InterruptedError:
            continue
        if init_fd in readable:
            return os.waitpid(init_pid, 0)[1]
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
            other = peers.get(sock)
            if other is None:
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                try:
                    other.sendall(data)
                    continue
                except OSError:
                    pass
            for end in (sock, other):
                peers.pop(end, None)
                end.close()


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
    elif len(sys.argv) > 2 and sys.argv[1] == "--exec":
        # python sandbox.py --exec '<plan json>' argv...: enter, then exec (tests, tools)
        enter(json.loads(sys.argv[2]))
        os.execvp(sys.argv[3], sys.argv[3:])
