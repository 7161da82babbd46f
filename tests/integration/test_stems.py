"""Stems: new sandboxed environments start from processes parked in fresh cgroups
(environments/stems.py) — and are confined exactly as a freshly forked one is."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.support import LaminaServer, create_function

PROBE = """
import json, os

def handler(event, context):
    groups = dict(
        (line.split(":", 2)[1], line.split(":", 2)[2].strip())
        for line in open("/proc/self/cgroup") if line.count(":") >= 2
    )
    readable = []
    for path in event.get("try", []):
        try:
            with open(path, "rb") as file:
                if file.read(1):
                    readable.append(path)
        except OSError:
            pass
    return {
        "groups": groups,
        "uid": os.getuid(),
        "pid": os.getpid(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "readable": readable,
        "env": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
    }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    server = LaminaServer(
        tmp_path_factory.mktemp("stems") / "data",
        # No pre-warm on deploy: each update here must leave the next call to start
        # an environment itself, from a stem.
        extra_env={"LAMINA_SANDBOX": "1", "LAMINA_STEMS": "2", "LAMINA_PREWARM_ON_DEPLOY": "0"},
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: LaminaServer) -> Any:
    return server.client("lambda")


def _memory_cgroup(server: LaminaServer) -> None:
    on = httpx.get(f"{server.endpoint}/health").json()["sandbox"].get("on") or {}
    if on.get("memory_limit") != "cgroup" or not on.get("filesystem"):
        pytest.skip("stems need a memory cgroup and a private filesystem on this machine")


def _invoke(client: Any, name: str, event: Any = None) -> tuple[Any, str | None]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    return json.loads(response["Payload"].read()), response.get("FunctionError")


def _new_environment(client: Any, name: str, revision: int) -> None:
    """A configuration change retires the warm environment: the next call starts one."""
    client.update_function_configuration(FunctionName=name, Description=f"rev {revision}")
    client.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )


def _limit_mb(groups: dict[str, str]) -> int:
    memory = next(
        path for controllers, path in groups.items() if "memory" in controllers.split(",")
    )
    limit = Path("/sys/fs/cgroup/memory", memory.lstrip("/"), "memory.limit_in_bytes")
    if not limit.exists():  # cgroup v2: one group, memory.max
        limit = Path("/sys/fs/cgroup", groups.get("", memory).lstrip("/"), "memory.max")
    return int(limit.read_text()) >> 20


def _parked_stems(server: LaminaServer | None) -> list[Path]:
    """Stems' groups not taken yet (of every serving process with None): a taken one
    is sized for its function, a parked one has no memory limit."""
    pid = "*" if server is None else server.process.pid if server.process else 0
    parked = []
    for group in Path("/sys/fs/cgroup/memory").rglob(f"lamina/{pid}/stem-*"):
        try:
            if int((group / "memory.limit_in_bytes").read_text()) > 1 << 50:
                parked.append(group)
        except (OSError, ValueError):
            pass
    return parked


def _joined(group: Path) -> int:
    """Processes in a stem's group: it joins a moment after the group exists."""
    try:
        return len((group / "cgroup.procs").read_text().split())
    except OSError:
        return 0


def _wait_parked(server: LaminaServer, count: int, timeout: float = 20.0) -> None:
    """Until `count` stems are parked (in their groups), or the timeout; parking runs in
    the background and takes a cgroup attach (tens of ms, more on a busy machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for group in _parked_stems(server) if _joined(group)) >= count:
            return
        time.sleep(0.05)


def test_stems_are_parked_at_start_so_the_first_environment_takes_one(
    server: LaminaServer, client: Any
) -> None:
    """Before any environment: each zygote builds its sandbox root and parks stems at
    start, so even a serving process's first new environment skips the cgroup join."""
    _memory_cgroup(server)
    _wait_parked(server, 2)
    assert len([group for group in _parked_stems(server) if _joined(group)]) >= 2
    name = create_function(client, PROBE, MemorySize=160, Timeout=30)
    body, error = _invoke(client, name)  # the first environment this server starts
    assert error is None, body
    memory = next(p for c, p in body["groups"].items() if "memory" in c.split(","))
    assert "/stem-" in memory, body["groups"]
    assert _limit_mb(body["groups"]) == 160
    assert body["pid"] == 2 and body["pids"] == [1, 2]


def test_new_environments_come_from_stems_and_are_confined(
    server: LaminaServer, client: Any
) -> None:
    _memory_cgroup(server)
    name = create_function(client, PROBE, MemorySize=192, Timeout=30)
    _invoke(client, name)  # the first start parks stems behind it
    _wait_parked(server, 2)
    seen = set()
    for revision in range(3):
        _new_environment(client, name, revision)
        hidden = [str(server.data_dir / "lamina.db"), "/etc/shadow", "/proc/1/environ"]
        body, error = _invoke(client, name, {"try": hidden})
        assert error is None, body
        seen.add(body["env"])
        memory = next(p for c, p in body["groups"].items() if "memory" in c.split(","))
        assert "/stem-" in memory, body["groups"]  # a parked stem's groups, now its own
        assert _limit_mb(body["groups"]) == 192  # sized for this function when taken
        assert body["uid"] == 65534  # nobody, as a fresh fork
        assert body["pid"] == 2 and body["pids"] == [1, 2]  # PID 2 under its own init
        assert body["readable"] == []  # lamina's files, the host's and its init's stay hidden
        _wait_parked(server, 2)  # the pool tops itself up in the background
    assert len(seen) == 3


def test_a_stem_environment_is_killed_as_out_of_memory(server: LaminaServer, client: Any) -> None:
    _memory_cgroup(server)
    code = (
        "import os\n"
        "def handler(e, c):\n"
        "    if e.get('probe'):\n"
        "        return open('/proc/self/cgroup').read()\n"
        "    hog = []\n"
        "    while True:\n"
        "        hog.append(bytearray(16 << 20))\n"
    )
    name = create_function(client, code, MemorySize=128, Timeout=30)
    _invoke(client, name, {"probe": True})
    _wait_parked(server, 2)
    _new_environment(client, name, 1)
    groups, _ = _invoke(client, name, {"probe": True})
    assert "/stem-" in groups
    body, error = _invoke(client, name)  # the same (stem) environment blows its limit
    assert error == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory", body
    assert _invoke(client, name, {"probe": True})[1] is None  # and a new one serves next


def test_stems_parked_after_the_first_environments_hold_their_pages_already(
    server: LaminaServer, client: Any
) -> None:
    """Learned pre-faulting (prefault.py): once a new environment's first invocation
    has ended, the stems parked after it copy the pages it wrote before they wait."""
    _memory_cgroup(server)
    if not Path("/sys/fs/cgroup/memory").is_dir():
        pytest.skip("cgroup v1 layout is what this test reads")
    name = create_function(client, "def handler(e, c):\n    return 1\n")
    largest = 0
    for revision in range(1, 5):  # a new environment each time, from a stem when one is ready
        _new_environment(client, name, revision)
        assert _invoke(client, name)[1] is None
        time.sleep(0.5)  # learned in a thread, then the next stems park (50 ms after a take)
        _wait_parked(server, 2)
        largest = max([largest, *(_function_private_kb(g) for g in _parked_stems(None))])
        if largest > 2048:
            break
    # A stem's waiting process owns ~0.9 MB without pre-faulting; a no-op's set is ~3.4 MB.
    assert largest > 2048, largest


def _function_private_kb(group: Path) -> int:
    """Private memory of the process in a stem's group that will be the function's."""
    try:
        pids = (group / "cgroup.procs").read_text().split()
    except OSError:
        return 0
    return _private_kb(int(pids[-1])) if pids else 0


def test_stems_killed_while_parked_are_skipped_and_cleaned_up(
    server: LaminaServer, client: Any
) -> None:
    _memory_cgroup(server)
    if not Path("/sys/fs/cgroup/memory").is_dir():
        pytest.skip("cgroup v1 layout is what this test reads")
    name = create_function(client, PROBE, Timeout=30)
    _invoke(client, name)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        parked = _parked_stems(server)
        if len(parked) >= 2 and all(_joined(group) >= 2 for group in parked):  # init + fork
            break
        time.sleep(0.1)
    assert parked
    for group in parked:  # something kills them while they wait
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    _new_environment(client, name, 1)
    body, error = _invoke(client, name)
    assert error is None, body
    deadline = time.monotonic() + 10
    while any(group.exists() for group in parked) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [(str(g), (g / "cgroup.procs").read_text()) for g in parked if g.exists()]
    assert not left  # their groups are gone


SNAP = """
import os, time
from snapshot_restore_py import register_after_restore

RESTORED = []
register_after_restore(lambda: RESTORED.append(os.getpid()))

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    memory = [line for line in open("/proc/self/cgroup") if ":memory:" in line]
    return {
        "memory": memory[0].strip() if memory else "",
        "uid": os.getuid(),
        "restored": RESTORED == [os.getpid()],
        "init": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "env": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
    }
"""


def test_snapstart_environments_come_from_the_templates_stems(
    server: LaminaServer, client: Any
) -> None:
    _memory_cgroup(server)
    name = create_function(
        client, SNAP, Timeout=30, MemorySize=160, SnapStart={"ApplyOn": "PublishedVersions"}
    )
    version = client.publish_version(FunctionName=name)["Version"]
    client.get_waiter("published_version_active").wait(
        FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300}
    )

    def call(sleep: float) -> Any:
        response = client.invoke(
            FunctionName=name, Qualifier=version, Payload=json.dumps({"sleep": sleep}).encode()
        )
        return json.loads(response["Payload"].read())

    call(0)  # the first restore parks a stem behind it
    _wait_parked(server, 3)  # the zygote's two and the template's
    with ThreadPoolExecutor(3) as pool:  # three at once: new environments
        bodies = list(pool.map(call, [1.0, 1.0, 1.0]))
    from_stems = [b for b in bodies if "/stem-" in b["memory"]]
    assert from_stems, bodies
    for body in bodies:
        assert body["uid"] == 65534 and body["init"] == "snap-start" and body["restored"]
    groups = {b["memory"].split(":", 2)[2]: b for b in from_stems}
    for path in groups:  # sized for the function when taken
        limit = Path("/sys/fs/cgroup/memory", path.lstrip("/"), "memory.limit_in_bytes")
        if limit.exists():
            assert int(limit.read_text()) >> 20 == 160


BARE = """
import os

def handler(event, context):
    return {"pid": os.getpid()}
"""


def test_unsandboxed_environments_come_from_bare_stems(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """With no sandbox (LAMINA_SANDBOX=0, or lamina not root) stems are bare: forked
    ahead with no cgroups to join, and pre-faulted once a first environment is learned."""
    bare = LaminaServer(
        tmp_path_factory.mktemp("bare-stems") / "data",
        extra_env={
            "LAMINA_SANDBOX": "0", "LAMINA_STEMS": "2", "LAMINA_PREWARM_ON_DEPLOY": "0",
            "LAMINA_WORKERS": "1",
        },
    ).start()  # fmt: skip
    try:
        client = bare.client("lambda")
        name = create_function(client, BARE)
        assert bare.process is not None
        from_stems, largest = 0, 0
        for revision in range(1, 6):
            waiting = _waiting_children(bare)
            largest = max([largest, *(_private_kb(pid) for pid in waiting)])
            _new_environment(client, name, revision)
            body, error = _invoke(client, name)
            assert error is None, body
            from_stems += body["pid"] in waiting
            time.sleep(0.3)  # learned, and the next stem parked
        assert from_stems >= 3, from_stems  # the first may come before any stem is parked
        # A waiting bare stem owns ~1.5 MB without pre-faulting, ~3.4 MB with it.
        assert largest > 2560, largest
    finally:
        bare.stop()


def _waiting_children(server: LaminaServer) -> set[int]:
    """Processes forked by the server's zygotes that are not environments: stems."""
    assert server.process is not None
    environments = httpx.get(
        f"{server.endpoint}/_lamina/environments",
        headers={"Authorization": f"Bearer {server.secret_access_key}"},
    ).json()["environments"]
    taken = {int(e["pid"]) for e in environments}
    forked = {pid for zygote in _children(server.process.pid) for pid in _children(zygote)}
    return forked - taken


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return found


def _private_kb(pid: int) -> int:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return sum(
        int(rest.split()[0])
        for key, _, rest in (line.partition(":") for line in rollup.splitlines())
        if key in ("Private_Clean", "Private_Dirty")
    )
