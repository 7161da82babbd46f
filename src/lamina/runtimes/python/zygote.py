"""The Python runtime's fork server (zygote): an interpreter with lamina's runtime client
and common modules already imported, that forks a new execution environment on request.

A new environment is then a `fork()` — a few milliseconds — instead of an interpreter
start (~50 ms) plus imports. Runs on python3.10-3.13 with the standard library only.

    python -s -u zygote.py <control-fd> [module-to-preload ...]

The control fd is one end of a SOCK_SEQPACKET socketpair to lamina. Messages are JSON:

    lamina -> zygote  {"id": n, "argv": [...], "env": {...}, "cwd": "..."} + SCM_RIGHTS [out-fd]
    zygote -> lamina  {"ready": pid}             once, after preloading
                      {"id": n, "pid": pid}      the child is forked
                      {"id": n, "error": "..."}  it could not be
                      {"exit": pid, "code": c}   a child ended (code < 0: killed by signal -c)

    lamina -> zygote  {"id": n, "template": true, "argv", "env", "cwd"} + [out-fd, control-fd]
                      fork a SnapStart template for one function version (below)

    lamina -> zygote  {"id": n, "stem": name, "join": [cgroup.procs, ...], "pidns": bool}
                      park a stem: a child forked now that joins those cgroups (in a PID
                      namespace of its own when asked) and waits; replies {"id", "pid"}
    lamina -> zygote  a fork request with "use_stem": name + its fds: the stem takes it
                      (replies {"id", "pid": the stem's} once the stem says it took it, or
                      {"id", "error"} if it is gone: the zygote then kills what is left of it)
    lamina -> zygote  {"id": n, "prefault": [[address, length], ...]}: stems parked from
                      now on copy those pages before they wait (replies {"id", "pid": 0})

A stem takes a new environment's slowest step off its start: joining cgroups waits for
an RCU grace period on cgroup v1 (10-25 ms measured), and a parked stem has done it.

A request may carry "sandbox": a plan the child carries out (sandbox.py, next to this
file) before the runtime starts: cgroups, rlimits, namespaces, its own root. The pid
reported is then the sandbox's keeper, whose exit status is the function's.

The zygote stays single-threaded (forking a threaded process is unsafe) and never runs
user code itself. Each child starts a new session, so lamina can kill its whole
process group; its stdout and stderr go to the out-fd lamina passed.

A template is SnapStart's snapshot: a child that runs the function's init (imports
the handler), then the `snapshot_restore_py` before-snapshot hooks, reports
{"ready": pid, "init_ms": ms} (or {"error": {...}} and exits) on its own control fd,
and then serves the same fork protocol there. Environments forked from it run the
after-restore hooks and start with the function already initialised.
"""

import gc
import json
import os
import select
import signal
import socket
import sys

PACKAGE = "_lamina_runtime"  # bootstrap.PACKAGE: the runtime package's private name
# How long a stem handed a fork request has to say it took it (see _dispatch): it is
# waiting for it, so a live one answers at once; this only bounds a stuck one.
STEM_ANSWER_S = 5.0


def _preload(modules):
    for name in modules:
        try:  # noqa: SIM105 -- no contextlib import in the zygote's start-up path
            __import__(name)
        except Exception:  # a module the interpreter lacks is simply not preloaded
            pass


def _cache_bytecode(folder):
    """Compile the runtime's modules that load lazily in the children (log handlers,
    ...): environments run with PYTHONDONTWRITEBYTECODE, so without a cached .pyc
    each new environment would compile them from source again (~2 ms)."""
    import py_compile

    for name in os.listdir(folder):
        if name.endswith(".py"):
            try:  # noqa: SIM105 -- no contextlib import in the zygote's start-up path
                py_compile.compile(os.path.join(folder, name), doraise=True)
            except Exception:  # a read-only install: children compile, slower but fine
                pass


def _load_runtime():
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import bootstrap

    runtime = bootstrap.load_runtime()
    _cache_bytecode(here)
    # The sandbox's code (and ctypes) are loaded once here, not in every child.
    __import__(PACKAGE + ".sandbox")
    if "logging" in sys.modules:
        # Preloaded modules brought `logging` in, so every child installs Lambda's log
        # handler at start: import it here once (~1-2 ms of each new environment).
        __import__(PACKAGE + ".log_handlers")
    # bootstrap removed its folder from sys.path for the function's sake; make sure.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.modules.pop("bootstrap", None)
    return runtime


def _send(control, message):
    try:
        control.send(json.dumps(message).encode())
    except OSError:
        os._exit(0)  # lamina is gone


def _reap(control, sandboxed, stems):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        for name, (stem_pid, sock, _) in list(stems.items()):
            if stem_pid == pid:  # died while parked: its socket goes with it
                del stems[name]
                sock.close()
        if pid in sandboxed:
            sandboxed.discard(pid)
            code = sys.modules[PACKAGE + ".sandbox"].exit_code(status, True)
        else:
            code = os.waitstatus_to_exitcode(status)
        _send(control, {"exit": pid, "code": code})


def _become(request, out_fd, closing):
    """In a forked child: leave the zygote's session, fds and environment behind."""
    if not request.get("parked"):  # a stem made its session when it was parked
        os.setsid()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in closing:
        os.close(fd)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    import time

    time.tzset()
    sys.argv = list(request["argv"])
    plan = request.get("sandbox")
    if plan:
        # Returns in the function's process only: the keeper and PID 1 end in there.
        sys.modules[PACKAGE + ".sandbox"].enter(plan)


def _run_hooks(kind):
    """snapshot_restore_py's hooks, as awslambdaric runs them: before-snapshot in
    reverse order of registration, after-restore in order."""
    hooks = sys.modules.get("snapshot_restore_py")
    if hooks is None:
        return
    if kind == "before":
        registered = hooks.get_before_snapshot()
        while registered:
            func, args, kwargs = registered.pop()
            func(*args, **kwargs)
    else:
        for func, args, kwargs in hooks.get_after_restore():
            func(*args, **kwargs)


def _stem(request, sock, closing, runtime, restored, in_namespace, prefault):
    """A parked stem: join the cgroups now, then become whatever environment arrives.

    In a PID namespace of its own the stem is its PID 1: it also forks the process that
    will be the function now (the fork a sandbox's init makes, taken off the start too)
    and waits for it as the sandbox's init; that process takes the request."""
    try:
        os.setsid()  # its own group from the start: lamina may kill it while it waits
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in closing:
            os.close(fd)
        for procs in request.get("join", ()):
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # this process
            finally:
                os.close(fd)
        function_pid = os.fork() if in_namespace else 0
        if function_pid != 0:
            sock.close()
            sys.modules[PACKAGE + ".sandbox"].run_init(function_pid)  # never returns
        # The pages a new environment is known to copy, copied now, in the process that
        # becomes it (lamina.environments.prefault); charged to its cgroup, joined above.
        sys.modules[PACKAGE + ".sandbox"].prefault(prefault)
        data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 4)
        if data:
            sock.send(b"+")  # taken: the zygote answers lamina once it knows (_dispatch)
    except OSError:
        os._exit(1)
    sock.close()
    if not data:
        os._exit(0)  # the zygote is gone: nothing will come
    _child(json.loads(data), fds, (), runtime, restored)


def _child(request, fds, closing, runtime, restored):
    """Runs in the forked child: become the environment's process, then the runtime."""
    code = 1
    gc.enable()  # the function's own garbage is collected as usual
    try:
        _become(request, fds[0], closing)
        if len(fds) > 1:  # the private runtime channel (runtime_channel.py)
            os.environ["_LAMINA_RUNTIME_CHANNEL"] = str(fds[1])
        # A fork copies the parent's random state: reseed so environments differ.
        if "random" in sys.modules:
            sys.modules["random"].seed()
        if restored:
            _run_hooks("after")
        code = runtime.main(sys.argv, os.environ)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def _template(request, fds, closing, runtime):
    """A SnapStart template: init the function, snapshot hooks, then serve forks."""
    out_fd, control_fd = fds
    control = socket.socket(fileno=control_fd)
    if request.get("sandbox"):  # its keeper takes this fd over (sandbox.py, templates)
        request["sandbox"]["control_fd"] = control_fd
    try:
        _become(request, out_fd, closing)
        started = time_ns()
        gc.enable()  # the function's init is user code: its garbage is collected
        runtime.set_import_path(os.environ)
        handler = os.environ.get("_HANDLER", "")
        try:
            runtime.load_handler(handler)
        except BaseException as exc:
            faults = sys.modules[runtime.__name__.rsplit(".", 1)[0] + ".faults"]
            if isinstance(exc, faults.FaultException):
                error = faults.make_error(exc.msg, exc.exception_type, exc.trace)
            else:
                error = faults.exception_error(exc)
            for line in faults.error_log_lines(error):
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
            _send(control, {"error": error})
            os._exit(1)
        _run_hooks("before")
        gc.collect()  # the snapshot keeps no garbage, and its objects are frozen, shared
        gc.disable()
        gc.freeze()
        _send(control, {"ready": os.getpid(), "init_ms": (time_ns() - started) / 1e6})
    except BaseException as exc:
        _send(control, {"error": {"errorType": type(exc).__name__, "errorMessage": str(exc)}})
        os._exit(1)
    os._exit(_serve(control, runtime, restored=True))


def time_ns():
    import time

    return time.monotonic_ns()


def main(argv):
    control = socket.socket(fileno=int(argv[1]))
    # No collection while preloading, then freeze what was loaded: a child's collector
    # never walks (and so never writes to) the zygote's objects, which keeps their pages
    # shared instead of copied on the child's first collection (Instagram's gc.freeze).
    gc.disable()
    _preload(argv[2:])
    runtime = _load_runtime()
    gc.freeze()
    _send(control, {"ready": os.getpid()})
    return _serve(control, runtime, restored=False)


def _serve(control, runtime, restored):
    """The fork loop: one child per request; report exits."""
    sandbox = sys.modules[PACKAGE + ".sandbox"]
    base_root, pid_namespaces = sandbox.BaseRoot(), sandbox.PidNamespaces()
    sandboxed = set()  # children that are a sandbox's init
    stems = {}  # name -> (pid, socket to it, whether it has a PID namespace of its own)
    exits = sandbox.ChildExits()
    prefault = []  # pages stems copy before they wait: [[address, length], ...]
    while True:
        try:
            readable, _, _ = select.select([control, exits.read], [], [])
        except InterruptedError:
            continue
        if exits.read in readable:
            exits.drain()
            _reap(control, sandboxed, stems)
        if control not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
        except OSError:
            return 0
        if not data:
            return 0  # lamina closed its end: stop; the children live on until killed
        request = json.loads(data)
        if "prepare" in request:
            # Asked once at start: the shared root is built before any environment or
            # stem waits on it (stems are refused until it is: see below).
            if not restored:
                base_root.ensure(request["prepare"])
            _send(control, {"id": request["id"], "pid": 0})
            continue
        if "prefault" in request:
            prefault[:] = request["prefault"]
            _send(control, {"id": request["id"], "pid": 0})
            continue
        if "stem" in request:
            if base_root.pending and not restored and not request.get("bare"):
                # Its first sandboxed fork moves the zygote into a mount namespace of its
                # own (BaseRoot); a stem parked before would be left in lamina's.
                _send(control, {"id": request["id"], "error": "no sandboxed fork yet"})
                continue
            _park(request, control, runtime, restored, stems, pid_namespaces, exits, prefault)
            continue
        stem = stems.pop(request["use_stem"], None) if "use_stem" in request else None
        if "use_stem" in request:
            plan = request.get("sandbox")
            if plan:
                base_root.ensure(plan)
            _send(control, _dispatch(request, fds, stem, sandboxed))
            continue
        template = bool(request.get("template"))
        if len(fds) != 1 + template + bool(request.get("channel")):
            for fd in fds:
                os.close(fd)
            _send(control, {"id": request.get("id"), "error": "wrong number of fds"})
            continue
        plan = request.get("sandbox")
        in_namespace = False
        if plan:
            base_root.ensure(plan)
            in_namespace = pid_namespaces.before_fork(plan)
            if not in_namespace:
                plan["namespaces"] = [ns for ns in plan.get("namespaces", ()) if ns != "pid"]
        pid, error = _fork(pid_namespaces, in_namespace)
        if pid < 0:
            for fd in fds:
                os.close(fd)
            _send(control, {"id": request["id"], "error": str(error)})
            continue
        if pid == 0:
            closing = _closing(control, exits, pid_namespaces, stems)
            if template:
                _template(request, fds, closing, runtime)
            _child(request, fds, closing, runtime, restored)
        if plan:
            sandboxed.add(pid)
        for fd in fds:
            os.close(fd)
        _send(control, {"id": request["id"], "pid": pid})


def _fork(pid_namespaces, in_namespace):
    """fork(), into the PID namespace made for it when `in_namespace`: (pid, error)."""
    try:
        pid, error = os.fork(), None
    except OSError as exc:
        pid, error = -1, exc
    if pid != 0 and in_namespace:
        pid_namespaces.after_fork()
    return pid, error


def _closing(control, exits, pid_namespaces, stems):
    """In a new child: the zygote's descriptors it must close."""
    closing = (control.detach(), exits.read, exits.write, *pid_namespaces.fds())
    return closing + tuple(sock.detach() for _, sock, _ in stems.values())


def _park(request, control, runtime, restored, stems, pid_namespaces, exits, prefault):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    in_namespace = bool(request.get("pidns")) and pid_namespaces.before_fork(
        {"namespaces": ["pid"]}
    )
    pid, error = _fork(pid_namespaces, in_namespace)
    if pid == 0:
        ours.close()
        closing = _closing(control, exits, pid_namespaces, stems)
        _stem(request, theirs, closing, runtime, restored, in_namespace, prefault)
    theirs.close()
    if pid < 0:
        ours.close()
        _send(control, {"id": request["id"], "error": str(error)})
        return
    stems[request["stem"]] = (pid, ours, in_namespace)
    _send(control, {"id": request["id"], "pid": pid})


def _kill_group(pid):
    try:  # noqa: SIM105 -- no contextlib import in the zygote's start-up path
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _dispatch(request, fds, stem, sandboxed):
    """Hand a fork request and its fds to a parked stem; the reply for lamina."""
    try:
        if stem is None:
            return {"id": request["id"], "error": "no such stem"}
        pid, sock, in_namespace = stem
        request["parked"] = True
        plan = request.get("sandbox")
        if plan and not in_namespace:
            plan["namespaces"] = [ns for ns in plan.get("namespaces", ()) if ns != "pid"]
        elif plan:
            plan["init_above"] = True  # the stem forked the function's process already
        try:
            socket.send_fds(sock, [json.dumps(request).encode()], fds)
            # A stem killed a moment ago may still take the message; only its answer says
            # it lives on as the environment. Without one it is killed, and lamina forks
            # a fresh child instead of reporting the stem's death as the function's.
            sock.settimeout(STEM_ANSWER_S)
            if sock.recv(1) != b"+":
                raise OSError("it ended before it took the request")
        except OSError as exc:  # it died while parked, or never answered
            _kill_group(pid)
            return {"id": request["id"], "error": f"stem gone: {exc}"}
        finally:
            sock.close()
        if plan:
            sandboxed.add(pid)
        return {"id": request["id"], "pid": pid}
    finally:
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
