"""A SnapStart template's keeper (standard library only): the root process that makes
a template's sandbox and then serves lamina for it.

The template runs the function's init as `nobody`, PID 1 of its own PID namespace, and
so cannot keep the privileges its environments need. Its keeper, which runs only
lamina's code, holds what it needs from the host (`Held`), forks the template
(`start_template`) and then relays the fork protocol (`TemplateKeeper`): it moves the
template into each new environment's cgroups for its fork (or a stem into fresh ones
when it is parked), turns the template's pids into the host's, and forwards each
environment's Runtime API port when egress is off.
"""

import contextlib
import json
import os
import signal
import socket
import sys

from .sandbox import (
    CLONE_NEWNET,
    CLONE_NEWPID,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    ChildExits,
    _become_unprivileged,
    _Libc,
    splice,
)


class Held:
    """What the keeper keeps from the host, opened before the sandbox hides it."""

    def __init__(self, plan):
        flags = os.O_RDONLY | os.O_CLOEXEC
        self.control = int(plan["control_fd"])
        self.proc = os.open("/proc", flags | os.O_DIRECTORY)
        self.cgroups = -1
        root = plan.get("cgroup_root")
        if root:
            with contextlib.suppress(OSError):
                self.cgroups = os.open(root, flags | os.O_DIRECTORY)
        self.host_net = -1
        if "net" in plan.get("namespaces", ()):
            self.host_net = os.open("/proc/self/ns/net", flags)
        self.cgroup_root = (root or "").rstrip("/") + "/"

    def fds(self):
        return [fd for fd in (self.proc, self.cgroups, self.host_net) if fd >= 0]


def start_template(plan, libc, held):
    """Fork the template (PID 1 of a new PID namespace, unprivileged) and, in this
    process, become its keeper; returns in the template only."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if plan.get("template_pid"):
        libc.unshare(CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        ours.close()
        for fd in held.fds():
            os.close(fd)
        # The template speaks the fork protocol on the fd it was given; the keeper
        # has the other end of it now.
        os.dup2(theirs.fileno(), held.control)
        theirs.close()
        if plan.get("template_pid"):
            libc.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _become_unprivileged(plan, libc)
        return
    theirs.close()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    code = 1
    try:
        code = TemplateKeeper(held, ours, pid, plan).run()
    except BaseException as exc:
        sys.stderr.write(f"[lamina] the template's keeper failed: {exc!r}\n")
        sys.stderr.flush()
        os.kill(pid, signal.SIGKILL)
    finally:
        os._exit(code)


class TemplateKeeper:
    def __init__(self, held, template, pid, plan):
        self.held = held
        self.lamina = socket.socket(fileno=held.control)
        self.lamina.setblocking(True)
        self.template = template
        self.pid = pid  # the template's, on the host
        self.cwd = plan.get("cwd", "/")
        self.own_net = -1
        if held.host_net >= 0:  # through the host's /proc: the sandbox's root has none
            self.own_net = os.open("self/ns/net", os.O_RDONLY | os.O_CLOEXEC, dir_fd=held.proc)
        self.own_groups = list(plan.get("cgroups", ()))  # the template's (and this keeper's)
        self.waiting = {}  # request id -> the environment's plan
        self.queued = []  # fork requests behind the one in flight: (request, fds)
        self.in_flight = None
        self.hosts = {}  # the template's pid of an environment -> the host's
        self.listeners = {}  # listening socket -> (host, port, host pid or request id)
        self.peers = {}
        self.libc = _Libc()

    def run(self):
        import select

        exits = ChildExits()
        wake_read = exits.read
        while True:
            watched = [self.lamina, self.template, wake_read, *self.listeners, *self.peers]
            try:
                readable, _, _ = select.select(watched, [], [])
            except InterruptedError:
                continue
            if wake_read in readable:
                exits.drain()
                code = self._template_exit()
                if code is not None:
                    return code
            for sock in readable:
                if sock is self.lamina:
                    if not self._from_lamina():
                        os.kill(self.pid, signal.SIGKILL)  # lamina is gone: so is the template
                elif sock is self.template:
                    self._from_template()
                elif sock in self.listeners:
                    self._accept(sock)
                elif sock in self.peers:
                    splice(sock, self.peers)

    def _template_exit(self):
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 1
        if pid == 0:
            return None
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.waitstatus_to_exitcode(status)

    def _from_lamina(self):
        try:
            data, fds, _, _ = socket.recv_fds(self.lamina, 1 << 20, 4)
        except OSError:
            return False
        if not data:
            return False
        request = json.loads(data)
        if "stem" in request:
            # A stem (zygote.py): the template forks it, this keeper (root; the template
            # sees no cgroupfs) puts it in its groups when the pid comes back.
            self.waiting[request.get("id")] = {"cgroups": request.get("join", [])}
            request["join"] = []
            self._send_to_template(request, fds)
            return True
        plan = request.pop("sandbox", None)
        if plan is None:
            self._send_to_template(request, fds)
            return True
        # The environment's sandbox is its template's; what is its own comes here.
        request["cwd"] = plan.get("cwd", self.cwd)
        self.waiting[request.get("id")] = plan
        forward = plan.get("net_forward")
        if forward and self.own_net >= 0:
            self._listen(forward, request.get("id"))
        if "use_stem" in request:  # in its groups already: no fork, no moving the template
            self._send_to_template(request, fds)
            return True
        self.queued.append((request, fds))
        self._next_fork()
        return True

    def _next_fork(self):
        """One fork at a time: the template joins the environment's cgroups for it, so
        the environment is born in them (its after-restore hooks, and anything it
        starts, are charged to it from the first page), and goes back after."""
        if self.in_flight is not None or not self.queued:
            return
        request, fds = self.queued.pop(0)
        self.in_flight = request.get("id")
        self._join_cgroups(self.waiting.get(self.in_flight, {}).get("cgroups", ()), self.pid)
        self._send_to_template(request, fds)

    def _send_to_template(self, request, fds):
        with contextlib.suppress(OSError):
            socket.send_fds(self.template, [json.dumps(request).encode()], fds)
        for fd in fds:
            os.close(fd)

    def _from_template(self):
        try:
            data = self.template.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            return
        message = json.loads(data)
        if "id" in message and message["id"] == self.in_flight:
            self._join_cgroups(self.own_groups, self.pid)  # the template goes back
            self.in_flight = None
        if message.get("pid") and "id" in message:  # a fork's (0: a request that forks nothing)
            plan = self.waiting.pop(message["id"], None) or {}
            host = self._host_pid(int(message["pid"]))
            if host is None:
                message = {"id": message["id"], "error": "the environment is already gone"}
            else:
                self.hosts[int(message["pid"])] = host
                self._join_cgroups(plan.get("cgroups", ()), host)  # in them already; to be sure
                for key, where in list(self.listeners.items()):
                    if where[2] == message["id"]:
                        self.listeners[key] = (*where[:2], host)
                message["pid"] = host
        elif "id" in message and "error" in message:
            self.waiting.pop(message["id"], None)
        elif "exit" in message:
            host = self.hosts.pop(int(message["exit"]), None)
            if host is None:
                return  # an orphan the template reaped: not lamina's
            message["exit"] = host
            for key, where in list(self.listeners.items()):
                if where[2] == host:
                    del self.listeners[key]
                    key.close()
        with contextlib.suppress(OSError):
            self.lamina.send(json.dumps(message).encode())
        self._next_fork()

    def _host_pid(self, inner):
        """The host's pid of the template's child `inner` (its pid in the template's
        PID namespace), from the host's /proc: NSpid lists a pid in every namespace."""
        try:
            with open(f"{self.pid}/task/{self.pid}/children", opener=self._proc) as f:
                children = f.read().split()
        except OSError:
            return None
        for child in children:
            try:
                with open(f"{child}/status", opener=self._proc) as f:
                    for line in f:
                        if line.startswith("NSpid:"):
                            if int(line.split()[-1]) == inner:
                                return int(child)
                            break
            except (OSError, ValueError):
                continue
        return None

    def _proc(self, path, flags):
        return os.open(path, flags, dir_fd=self.held.proc)

    def _join_cgroups(self, groups, pid):
        for procs in groups:
            if self.held.cgroups < 0 or not procs.startswith(self.held.cgroup_root):
                continue
            try:
                fd = os.open(
                    procs[len(self.held.cgroup_root) :], os.O_WRONLY, dir_fd=self.held.cgroups
                )
                try:
                    os.write(fd, str(pid).encode())
                finally:
                    os.close(fd)
            except OSError as exc:
                sys.stderr.write(f"[lamina] the environment could not join {procs}: {exc}\n")

    def _listen(self, address, request_id):
        host, port = address.rsplit(":", 1)
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((host, int(port)))
            server.listen(64)
        except OSError:
            server.close()
            return
        self.listeners[server] = (host, int(port), request_id)

    def _accept(self, listener):
        host, port, _ = self.listeners[listener]
        try:
            inner, _ = listener.accept()
        except OSError:
            return
        outer = None
        libc = self.libc
        try:
            libc._check(libc.lib.setns(self.held.host_net, CLONE_NEWNET), "setns")
            try:
                outer = socket.create_connection((host, port))
            finally:
                libc._check(libc.lib.setns(self.own_net, CLONE_NEWNET), "setns")
        except OSError:
            inner.close()
            if outer is not None:
                outer.close()
            return
        self.peers[inner], self.peers[outer] = outer, inner
