"""Functions that try to break out of their sandbox: every attempt must fail, and the
server and other functions keep serving.

The probes run wherever the kernel grants the protection (lamina says which in
`GET /health`); a protection the machine lacks is skipped, never faked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.support import LaminaServer, create_function


@pytest.fixture(scope="module")
def lamina_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    """A server of this module's own, with the sandbox on (the shared one has it off)."""
    server = LaminaServer(
        tmp_path_factory.mktemp("sandboxed") / "data", extra_env={"LAMINA_SANDBOX": "1"}
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lambda_client(lamina_server: LaminaServer) -> Any:
    return lamina_server.client("lambda")


def _sandbox(server: LaminaServer) -> dict[str, Any]:
    described: dict[str, Any] = httpx.get(f"{server.endpoint}/health").json()["sandbox"]
    return described


def _requires(server: LaminaServer, *, filesystem: bool = False, memory: bool = False,
              pids: bool = False) -> dict[str, Any]:  # fmt: skip
    described = _sandbox(server)
    on = described.get("on") or {}
    if filesystem and not on.get("filesystem"):
        pytest.skip(f"no private filesystem on this machine: {described.get('off')}")
    if memory and on.get("memory_limit") != "cgroup":
        pytest.skip(f"no memory cgroup on this machine: {described.get('off')}")
    if pids and on.get("pids_limit") != "cgroup":
        pytest.skip(f"no pids cgroup on this machine: {described.get('off')}")
    return described


def _invoke(client: Any, name: str, event: Any = None) -> tuple[Any, str | None]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    return json.loads(response["Payload"].read()), response.get("FunctionError")


# What a function finds when it goes looking; each probe reports what it could do.
PROBE = """
import json, os, socket

def attempt(fn):
    try:
        return "OK " + str(fn())[:200]
    except Exception as exc:
        return "DENIED " + type(exc).__name__

def read(path):
    with open(path, "rb") as f:
        return f.read(100)

def write(path):
    with open(path, "w") as f:
        f.write("x")
    return path

def handler(event, context):
    targets = event.get("read", [])
    return {
        "read": {p: attempt(lambda p=p: read(p)) for p in targets},
        "list": {p: attempt(lambda p=p: os.listdir(p)) for p in event.get("list", [])},
        "write": {p: attempt(lambda p=p: write(p)) for p in event.get("write", [])},
        "uid": os.getuid(),
        "pid": os.getpid(),
        "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
        "cwd": os.getcwd(),
        "tmpdir": os.environ.get("TMPDIR"),
        "hostname": socket.gethostname(),
        "environ": sorted(os.environ),
        "here": os.listdir("/var/task") if os.path.isdir("/var/task") else None,
    }
"""


def test_health_says_what_is_enforced(lamina_server: LaminaServer) -> None:
    described = _sandbox(lamina_server)
    assert described["enabled"] is True
    assert isinstance(described["off"], list)
    assert "namespaces" in described["on"]


def test_a_function_cannot_see_lamina_or_other_functions(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    _requires(lamina_server, filesystem=True)
    data = lamina_server.data_dir.resolve()
    other = create_function(
        lambda_client, "MARKER = 'other-function-code-7f3a'\ndef handler(e, c):\n    return 1\n"
    )
    other_code = lambda_client.get_function(FunctionName=other)["Configuration"]["CodeSha256"]
    name = create_function(lambda_client, PROBE, Timeout=30)
    targets = [
        str(data / "credentials.json"),
        str(data / "lamina.db"),
        "/proc/1/environ",
        "/root/.bashrc",
        "/etc/shadow",
        str(data / "code"),
    ]
    body, error = _invoke(lambda_client, name, {
        "read": targets,
        "list": [str(data), str(data / "code"), "/root", "/home"],
        "write": ["/var/task/x.py", "/etc/x", "/x", "/usr/x", "/tmp/fine"],
    })  # fmt: skip
    assert error is None, body
    for path, outcome in body["read"].items():
        assert outcome.startswith("DENIED"), (path, outcome)
    for path, outcome in body["list"].items():
        if path == "/root":  # the interpreters may live under /root: only they are there
            assert "DENIED" in outcome or "'.pyenv'" in outcome or outcome == "OK []", outcome
        else:  # the data dir may hold the libraries lamina lends to functions, nothing else
            assert outcome.startswith("DENIED") or outcome in ("OK []", "OK ['runtime-lib']"), (
                path,
                outcome,
            )
    for path, outcome in body["write"].items():
        expected = "OK" if path.startswith("/tmp/") else "DENIED"
        assert outcome.startswith(expected), (path, outcome)
    assert body["uid"] != 0
    assert body["task_root"] == "/var/task" and body["cwd"] == "/var/task"
    assert body["here"] == ["app.py"]
    assert body["tmpdir"] == "/tmp"
    # lamina's own variables do not leak in
    leaked = {
        "LAMINA_SECRET_ACCESS_KEY",
        "LAMINA_ACCESS_KEY_ID",
        "LAMINA_DATA_DIR",
        "LAMINA_ENDPOINT",
    }
    assert not leaked & set(body["environ"])
    assert "other-function-code-7f3a" not in json.dumps(body)
    assert other_code not in json.dumps(body)


def test_the_function_is_not_pid_1_and_sees_only_its_own_processes(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    _requires(lamina_server, filesystem=True)
    code = (
        "import os\n"
        "def handler(e, c):\n"
        "    return {'pid': os.getpid(), 'procs': sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}\n"
    )
    body, error = _invoke(lambda_client, create_function(lambda_client, code, Timeout=30))
    assert error is None, body
    assert body["pid"] == 2
    assert body["procs"] == [1, 2]


def test_tmp_is_private_per_environment_and_sized(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    _requires(lamina_server, filesystem=True)
    code = (
        "import os, shutil\n"
        "def handler(e, c):\n"
        "    # lamina's own read-only folders are mounted here when it is installed under\n"
        "    # the host's /tmp (a CI clone): leave out entries that lead to a mount point\n"
        "    def mounted(top):\n"
        "        return any(os.path.ismount(os.path.join(r, d)) for r, ds, _ in os.walk(top) for d in ds)\n"
        "    seen = sorted(n for n in os.listdir('/tmp') if not mounted('/tmp/' + n))\n"
        "    open('/tmp/' + c.aws_request_id, 'w').write('x')\n"
        "    total = shutil.disk_usage('/tmp').total\n"
        "    try:\n"
        "        with open('/tmp/big', 'wb') as f:\n"
        "            for _ in range(700):\n"
        "                f.write(b'0' * (1 << 20))\n"
        "        filled = 'no limit'\n"
        "    except OSError as exc:\n"
        "        filled = type(exc).__name__\n"
        "    os.remove('/tmp/big')\n"
        "    return {'seen': seen, 'total_mb': total >> 20, 'filled': filled}\n"
    )
    first = create_function(
        lambda_client, code, MemorySize=1024, EphemeralStorage={"Size": 600}, Timeout=30
    )
    second = create_function(lambda_client, code, MemorySize=1024, Timeout=30)
    body, error = _invoke(lambda_client, first)
    assert error is None, body
    assert body["seen"] == [] and body["total_mb"] == 600 and body["filled"] == "OSError"
    warm, _ = _invoke(lambda_client, first)
    assert len(warm["seen"]) == 1  # the same environment keeps its /tmp
    other, _ = _invoke(lambda_client, second)
    assert other["seen"] == [] and other["total_mb"] == 512


def test_a_memory_bomb_is_killed_as_out_of_memory(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    _requires(lamina_server, memory=True)
    code = (
        "def handler(e, c):\n"
        "    hog = []\n"
        "    while True:\n"
        "        hog.append(bytearray(16 << 20))\n"
    )
    name = create_function(lambda_client, code, MemorySize=128, Timeout=30)
    body, error = _invoke(lambda_client, name)
    assert error == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory", body
    # the server and other functions are fine
    fine = create_function(lambda_client, "def handler(e, c):\n    return 'fine'\n", Timeout=30)
    assert _invoke(lambda_client, fine) == ("fine", None)
    # and the function gets a new environment next time
    small = create_function(
        lambda_client, "def handler(e, c):\n    return 'ok'\n", MemorySize=128, Timeout=30
    )
    assert _invoke(lambda_client, small) == ("ok", None)


def test_max_memory_used_comes_from_the_cgroup(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    _requires(lamina_server, memory=True)
    code = "def handler(e, c):\n    x = bytearray(60 << 20)\n    return len(x)\n"
    name = create_function(lambda_client, code, MemorySize=256, Timeout=30)
    response = lambda_client.invoke(FunctionName=name, LogType="Tail")
    import base64

    tail = base64.b64decode(response["LogResult"]).decode()
    used = int(tail.split("Max Memory Used: ")[1].split(" MB")[0])
    assert 60 <= used <= 256, tail


def test_a_fork_bomb_is_contained(lamina_server: LaminaServer, lambda_client: Any) -> None:
    _requires(lamina_server, pids=True)
    code = (
        "import os, time\n"
        "def handler(e, c):\n"
        "    made, failed = 0, None\n"
        "    for _ in range(5000):\n"
        "        try:\n"
        "            if os.fork() == 0:\n"
        "                time.sleep(30)\n"
        "                os._exit(0)\n"
        "            made += 1\n"
        "        except OSError as exc:\n"
        "            failed = type(exc).__name__\n"
        "            break\n"
        "    return {'made': made, 'failed': failed}\n"
    )
    # 2 GB, so that the pids limit (1,024) is reached before the memory limit.
    name = create_function(lambda_client, code, MemorySize=2048, Timeout=60)
    body, error = _invoke(lambda_client, name)
    if error is not None:  # the forks' own memory ran out first: contained all the same
        assert body["errorType"] == "Runtime.OutOfMemory", body
    else:
        assert body["failed"] == "BlockingIOError" and body["made"] < 1024, body
    fine = create_function(lambda_client, "def handler(e, c):\n    return 'fine'\n", Timeout=30)
    assert _invoke(lambda_client, fine) == ("fine", None)


def test_a_custom_runtime_is_sandboxed_too(lamina_server: LaminaServer, lambda_client: Any) -> None:
    _requires(lamina_server, filesystem=True)
    if not _sandbox(lamina_server).get("bubblewrap"):
        pytest.skip("no bubblewrap on this machine")
    from tests.integration.support import make_zip

    data = lamina_server.data_dir.resolve()
    bootstrap = f"""#!/bin/sh
set -u
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  headers=$(mktemp)
  curl -sS -D "$headers" -o /dev/null "$api/invocation/next" || exit 0
  rid=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | tr -d '\\r' | cut -d' ' -f2)
  seen=no; cat {data}/credentials.json >/dev/null 2>&1 && seen=yes
  wrote=no; touch /var/task/x 2>/dev/null && wrote=yes
  printf '{{"uid": %s, "pwd": "%s", "creds": "%s", "wrote": "%s", "root": "%s"}}' \\
    "$(id -u)" "$(pwd)" "$seen" "$wrote" "$LAMBDA_TASK_ROOT" > /tmp/out
  curl -sS -o /dev/null -X POST --data-binary @/tmp/out "$api/invocation/$rid/response"
done
"""
    name = create_function(
        lambda_client, {"x": "1"}, runtime="provided.al2023", handler="x", Timeout=30
    )
    lambda_client.update_function_code(
        FunctionName=name, ZipFile=make_zip({"bootstrap": bootstrap}, {"bootstrap": 0o755})
    )
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
    body, error = _invoke(lambda_client, name)
    assert error is None, body
    assert body == {
        "uid": 65534,
        "pwd": "/var/task",
        "creds": "no",
        "wrote": "no",
        "root": "/var/task",
    }


def test_snapstart_environments_are_sandboxed(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    _requires(lamina_server, filesystem=True)
    code = {
        "app.py": (
            "import os\n"
            "def handler(e, c):\n"
            "    import later  # imported after the restore: found at /var/task\n"
            "    return {'uid': os.getuid(), 'pid': os.getpid(), 'cwd': os.getcwd(),\n"
            "            'later': later.X, 'root': os.environ['LAMBDA_TASK_ROOT'],\n"
            "            'init': os.environ['AWS_LAMBDA_INITIALIZATION_TYPE']}\n"
        ),
        "later.py": "X = 'late'\n",
    }
    name = create_function(
        lambda_client, code, runtime="python3.12", Timeout=30,
        SnapStart={"ApplyOn": "PublishedVersions"},
    )  # fmt: skip
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.get_waiter("published_version_active").wait(
        FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    response = lambda_client.invoke(FunctionName=name, Qualifier=version)
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    # a fork of the template, which is PID 1 of the version's PID namespace
    assert body.pop("pid") > 1
    assert body == {
        "uid": 65534,
        "cwd": "/var/task",
        "later": "late",
        "root": "/var/task",
        "init": "snap-start",
    }


# A SnapStart function's init (module level) goes looking, and reports what it saw.
SNAPSTART_PROBE = """
import json, os

def attempt(fn):
    try:
        return "OK " + str(fn())[:200]
    except Exception as exc:
        return "DENIED " + type(exc).__name__

def read(path):
    with open(path, "rb") as f:
        return f.read(100)

TARGETS = json.loads(os.environ["PROBE_TARGETS"])
SEEN_AT_INIT = {
    "read": {p: attempt(lambda p=p: read(p)) for p in TARGETS["read"]},
    "list": {p: attempt(lambda p=p: os.listdir(p)) for p in TARGETS["list"]},
    "write": attempt(lambda: open("/var/task/x", "w")),
    "uid": os.getuid(),
    "cwd": os.getcwd(),
    "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
}
open("/tmp/from-init", "w").write("x")

def handler(event, context):
    return {"init": SEEN_AT_INIT, "tmp": sorted(os.listdir("/tmp")),
            "type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
"""


def test_a_snapstart_init_cannot_see_lamina_or_other_functions(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    _requires(lamina_server, filesystem=True)
    data = lamina_server.data_dir.resolve()
    other = create_function(
        lambda_client, "MARKER = 'other-function-code-5b1e'\ndef handler(e, c):\n    return 1\n"
    )
    other_code = lambda_client.get_function(FunctionName=other)["Configuration"]["CodeSha256"]
    targets = {
        "read": [str(data / "credentials.json"), str(data / "lamina.db"), "/proc/1/environ",
                 str(data / "code" / other_code / "app.py"), "/etc/shadow"],
        "list": [str(data), str(data / "code"), "/home"],
    }  # fmt: skip
    name = create_function(
        lambda_client, SNAPSTART_PROBE, runtime="python3.12", Timeout=30,
        SnapStart={"ApplyOn": "PublishedVersions"},
        Environment={"Variables": {"PROBE_TARGETS": json.dumps(targets)}},
    )  # fmt: skip
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.get_waiter("published_version_active").wait(
        FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    response = lambda_client.invoke(FunctionName=name, Qualifier=version)
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    assert body["type"] == "snap-start"
    seen = body["init"]
    for path, outcome in seen["read"].items():
        assert outcome.startswith("DENIED"), (path, outcome)
    for path, outcome in seen["list"].items():
        assert outcome.startswith("DENIED") or outcome in ("OK []", "OK ['runtime-lib']"), (
            path,
            outcome,
        )
    assert seen["write"].startswith("DENIED")
    assert seen["uid"] == 65534 and seen["cwd"] == "/var/task"
    assert seen["procs"] == [1]  # init sees itself only, in a PID namespace of its own
    assert "other-function-code-5b1e" not in json.dumps(body)
    # the environment is a fork of that init: its /tmp is the template's (shared by the
    # version's environments; documented in docs/sandbox.md)
    assert "from-init" in body["tmp"]


EGRESS_PROBE = """
import os, socket
def handler(event, context):
    out = {}
    for name, host, port in (("lamina", "127.0.0.1", int(event["port"])), ("outside", "192.0.2.1", 80)):
        try:
            socket.create_connection((host, port), timeout=1).close()
            out[name] = "connected"
        except OSError as exc:
            out[name] = type(exc).__name__
    return out
"""


def test_functions_in_subnets_have_no_egress(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    described = _sandbox(lamina_server)
    if not described["on"].get("egress_off"):
        pytest.skip("this kernel gives lamina no network namespaces")
    port = json.dumps({"port": lamina_server.port})
    open_fn = create_function(lambda_client, EGRESS_PROBE, Timeout=10)
    closed_fn = create_function(
        lambda_client, EGRESS_PROBE, Timeout=10,
        VpcConfig={"SubnetIds": ["subnet-private"], "SecurityGroupIds": ["sg-1"]},
    )  # fmt: skip
    config = lambda_client.get_function_configuration(FunctionName=closed_fn)
    assert config["VpcConfig"]["SubnetIds"] == ["subnet-private"]
    opened = json.loads(lambda_client.invoke(FunctionName=open_fn, Payload=port)["Payload"].read())
    assert opened["lamina"] == "connected"
    # the Runtime API still answers (this invocation completes), nothing else does
    closed = json.loads(
        lambda_client.invoke(FunctionName=closed_fn, Payload=port)["Payload"].read()
    )
    assert closed["lamina"] != "connected" and closed["outside"] != "connected", closed


# A custom runtime (provided.al2023) whose bootstrap, a shell script, tries the same.
EGRESS_BOOTSTRAP = """#!/bin/sh
set -u
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
try() { curl -sS --max-time 2 -o /dev/null "$1" 2>/dev/null && echo connected || echo "failed:$?"; }
while true; do
  headers=$(mktemp)
  curl -sS -D "$headers" -o /dev/null "$api/invocation/next" || exit 0
  rid=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | tr -d '\\r' | cut -d' ' -f2)
  printf '{"lamina": "%s", "other": "%s", "outside": "%s"}' \\
    "$(try http://127.0.0.1:$LAMINA_PORT/health)" "$(try http://127.0.0.1:$OTHER_PORT/)" \\
    "$(try http://192.0.2.1:80/)" > /tmp/out
  curl -sS -o /dev/null -X POST --data-binary @/tmp/out "$api/invocation/$rid/response"
done
"""


def test_a_custom_runtime_in_subnets_reaches_only_the_runtime_api(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    described = _sandbox(lamina_server)
    if not described["on"].get("egress_off") or not described.get("bubblewrap"):
        pytest.skip("no network namespaces or no bubblewrap on this machine")
    import socket
    import threading

    from tests.integration.support import make_zip

    other = socket.create_server(("127.0.0.1", 0))  # another host service on loopback

    def answer() -> None:
        while True:
            try:
                conn, _ = other.accept()
            except OSError:
                return
            with conn:
                conn.recv(1000)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    variables = {"LAMINA_PORT": str(lamina_server.port), "OTHER_PORT": str(other.getsockname()[1])}
    package = make_zip({"bootstrap": EGRESS_BOOTSTRAP}, {"bootstrap": 0o755})
    try:
        names = {}
        for label, extra in (("open", {}), ("closed", {"VpcConfig": {
                "SubnetIds": ["subnet-private"], "SecurityGroupIds": ["sg-1"]}})):  # fmt: skip
            names[label] = create_function(
                lambda_client, {"bootstrap": "#!/bin/sh\n"}, runtime="provided.al2023",
                handler="x", Timeout=30, Environment={"Variables": variables}, **extra,
            )  # fmt: skip
            lambda_client.update_function_code(FunctionName=names[label], ZipFile=package)
            lambda_client.get_waiter("function_updated_v2").wait(FunctionName=names[label])
        opened, error = _invoke(lambda_client, names["open"])
        assert error is None, opened
        assert opened["lamina"] == opened["other"] == "connected", opened
        # answered through the Runtime API (twice: the same environment stays usable) ...
        for _ in range(2):
            closed, error = _invoke(lambda_client, names["closed"])
            assert error is None, closed
            # ... while nothing else can be reached, host loopback services included
            assert all(v.startswith("failed") for v in closed.values()), closed
    finally:
        other.close()


def test_a_snapstart_function_in_subnets_has_no_egress_from_init_or_environments(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    described = _sandbox(lamina_server)
    if not described["on"].get("egress_off"):
        pytest.skip("this kernel gives lamina no network namespaces")
    code = EGRESS_PROBE + (
        "\nimport os\n"
        "AT_INIT = handler({'port': os.environ['LAMINA_PORT']}, None)\n"
        "def runtime_api():\n"
        "    import urllib.error, urllib.request\n"
        "    url = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/nothing-here'\n"
        "    try:\n"
        "        return urllib.request.urlopen(url, timeout=5).status\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        return exc.code\n"
        "def with_init(event, context):\n"
        "    return {'init': AT_INIT, 'invoke': handler(event, context), 'api': runtime_api()}\n"
    )
    name = create_function(
        lambda_client, code, runtime="python3.12", handler="app.with_init", Timeout=30,
        SnapStart={"ApplyOn": "PublishedVersions"},
        VpcConfig={"SubnetIds": ["subnet-private"], "SecurityGroupIds": ["sg-1"]},
        Environment={"Variables": {"LAMINA_PORT": str(lamina_server.port)}},
    )  # fmt: skip
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.get_waiter("published_version_active").wait(
        FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    port = json.dumps({"port": lamina_server.port}).encode()
    for _ in range(2):  # answered through the Runtime API, twice
        response = lambda_client.invoke(FunctionName=name, Qualifier=version, Payload=port)
        body = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, body
        for when in ("init", "invoke"):
            assert "connected" not in body[when].values(), body
        # the Runtime API over TCP (awslambdaric's way) answers: the keeper forwards it
        assert isinstance(body["api"], int) and 400 <= body["api"] < 500, body


def test_a_snapstart_environment_is_born_in_its_own_cgroup(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    _requires(lamina_server, filesystem=True, memory=True)
    code = (
        "from snapshot_restore_py import register_after_restore\n"
        "KEPT = []\n"
        "@register_after_restore\n"
        "def grow():\n"
        "    KEPT.append(bytearray(b'x') * (80 << 20))  # touched, before the first invocation\n"
        "def handler(e, c):\n"
        "    return len(KEPT)\n"
    )
    name = create_function(
        lambda_client, code, runtime="python3.12", MemorySize=512, Timeout=30,
        SnapStart={"ApplyOn": "PublishedVersions"},
    )  # fmt: skip
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.get_waiter("published_version_active").wait(
        FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    import base64

    response = lambda_client.invoke(FunctionName=name, Qualifier=version, LogType="Tail")
    assert json.loads(response["Payload"].read()) == 1
    tail = base64.b64decode(response["LogResult"]).decode()
    used = int(tail.split("Max Memory Used: ")[1].split(" MB")[0])
    # what its after-restore hook allocated counts against the environment, not its template
    assert 80 <= used <= 512, tail
