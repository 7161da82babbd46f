"""Several serving processes on one API port (LAMINA_WORKERS=2) against real clients:
whichever process a connection lands on, every answer is the one a single process would
give — the same code, the same 404 after a delete, the same IAM decision, the same
account-wide limits — and the processes come and go together.

The kernel spreads *connections* over the processes (SO_REUSEPORT), so each test speaks
over many fresh connections, one boto3 client each. Which process ran an invocation is
read back, not guessed: the function returns its log stream, whose tail is its
environment's id, and `/_lamina/environments` says which process owns that environment.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.support import (
    LAMBDA_TRUST,
    LaminaServer,
    create_function,
    log_messages,
    make_zip,
    process_tree,
    unique_name,
)
from tests.integration.test_access import SIGNING_CLIENT

CONNECTIONS = 16  # fresh connections per check: all on one process by chance is 2 ** -15
PRIMARY = 0  # the slot /_lamina/environments gives the primary's rows (they carry no "worker")

WHERE = """import os
import time

RELEASE = "v1"


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    print("ran", event.get("id"))
    return {
        "echo": event,
        "release": RELEASE,
        "color": os.environ.get("COLOR"),
        "stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
    }
"""

ECHO = "def handler(event, context):\n    return {'ok': True}\n"


def _start(server: LaminaServer) -> LaminaServer:
    """Start `server` with its workers, and return once every worker serves."""
    server.extra_env = {"LAMINA_WORKERS": "2", **server.extra_env}
    server.start()
    _until_workers_ready(server)
    return server


def _health(server: LaminaServer) -> dict[str, Any]:
    health: dict[str, Any] = httpx.get(f"{server.endpoint}/health", timeout=10).json()
    return health


def _until_workers_ready(server: LaminaServer, other_than: int | None = None) -> dict[str, Any]:
    """/health's workers once all are ready (and worker 1's pid is not `other_than`)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            workers: dict[str, Any] = _health(server)["workers"]
        except httpx.TransportError:
            # A connection the kernel had queued for a worker just killed is reset.
            assert time.monotonic() < deadline, "the server stopped answering"
            time.sleep(0.05)
            continue
        pid = workers["pids"].get("1")
        if workers["ready"] == workers["expected"] and pid is not None and pid != other_than:
            return workers
        assert time.monotonic() < deadline, f"workers never became ready: {workers}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    started = _start(LaminaServer(tmp_path_factory.mktemp("workers") / "data"))
    yield started
    started.stop()


@pytest.fixture()
def own_server(tmp_path: Path) -> Iterator[LaminaServer]:
    """A server of the test's own (limits, or one that the test stops)."""
    own = LaminaServer(tmp_path / "data")
    yield own
    own.stop()


def _clients(
    server: LaminaServer, n: int = CONNECTIONS, service: str = "lambda", **kwargs: Any
) -> list[Any]:
    """`n` clients: each opens a connection of its own on its first call."""
    return [server.client(service, **kwargs) for _ in range(n)]


def _environments(server: LaminaServer) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.endpoint}/_lamina/environments",
        headers={"Authorization": f"Bearer {server.secret_access_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["environments"]
    return rows


def _owners(server: LaminaServer) -> dict[str, int]:
    """Environment id -> the serving process it belongs to (0: the primary)."""
    return {row["id"]: int(row.get("worker", PRIMARY)) for row in _environments(server)}


def _env_id(stream: str) -> str:
    return stream.rsplit("]", 1)[1]  # "2026/01/01/[$LATEST]<environment id>"


def _invoke_only(function: str) -> str:
    """An identity policy that allows invoking `function` and nothing else."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "lambda:InvokeFunction",
        "Resource": f"arn:aws:lambda:us-east-1:000000000000:function:{function}",
    }]})  # fmt: skip


def _invoke(client: Any, name: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}))
    assert response["StatusCode"] == 200 and "FunctionError" not in response, response
    body: dict[str, Any] = json.loads(response["Payload"].read())
    return body


def _warm_both(server: LaminaServer, name: str) -> list[dict[str, Any]]:
    """Calls at once over every connection, each long enough to need an environment of
    its own: both processes start environments of `name` (a process with none of them
    otherwise sends a call to one with an idle one: serving/placement.py). After this,
    a call runs on the process its connection reached."""
    clients = _clients(server)
    bodies = _run_together([lambda c=c: _invoke(c, name, {"sleep": 0.5}) for c in clients])
    owners = _owners(server)
    assert {owners[_env_id(b["stream"])] for b in bodies} == {PRIMARY, 1}
    return bodies


def _run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call at once, one thread each, released together; their outcomes."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = calls[i]()
        except ClientError as err:
            outcomes[i] = err.response

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _running(pid: int, started: str) -> bool:
    """Is `pid` still the process that started at `started`, and not a zombie?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] == started and fields[0] not in ("Z", "X")


def _until_gone(processes: list[tuple[int, str, str]]) -> list[int]:
    """Wait (bounded) for `processes` to end; those still running."""
    deadline = time.monotonic() + 30
    while True:
        left = [pid for pid, _, started in processes if _running(pid, started)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def test_invokes_over_many_connections_run_on_both_processes(server: LaminaServer) -> None:
    name = create_function(server.client(), WHERE)
    _warm_both(server, name)
    bodies = [_invoke(c, name, {"id": i}) for i, c in enumerate(_clients(server))]
    assert [b["echo"] for b in bodies] == [{"id": i} for i in range(CONNECTIONS)]
    owners = _owners(server)
    served = {owners[_env_id(b["stream"])] for b in bodies}
    assert served == {PRIMARY, 1}


def test_calls_one_at_a_time_reuse_one_warm_environment_whichever_process_they_reach(
    server: LaminaServer,
) -> None:
    """A process with no environment of a revision sends the call to the process that
    has an idle one, instead of starting a second: one environment serves them all."""
    name = create_function(server.client(), WHERE)
    bodies = [_invoke(c, name, {"id": i}) for i, c in enumerate(_clients(server))]
    assert [b["echo"] for b in bodies] == [{"id": i} for i in range(CONNECTIONS)]
    assert len({b["stream"] for b in bodies}) == 1
    assert len([row for row in _environments(server) if row["function"] == name]) == 1


def test_every_process_reads_its_writes(server: LaminaServer) -> None:
    root = server.client()
    name = create_function(root, WHERE)
    assert {_invoke(c, name)["release"] for c in _clients(server)} == {"v1"}

    root.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": WHERE.replace('"v1"', '"v2"')})
    )
    root.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    assert root.get_function(FunctionName=name)["Configuration"]["LastUpdateStatus"] == "Successful"
    assert {b["release"] for b in _warm_both(server, name)} == {"v2"}
    assert {_invoke(c, name)["release"] for c in _clients(server)} == {"v2"}

    root.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"COLOR": "blue"}}
    )
    root.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    assert {_invoke(c, name)["color"] for c in _clients(server)} == {"blue"}

    root.delete_function(FunctionName=name)
    for client in _clients(server):
        with pytest.raises(ClientError) as err:
            client.invoke(FunctionName=name, Payload=b"{}")
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_control_plane_and_other_services_answer_on_every_connection(server: LaminaServer) -> None:
    name = create_function(server.client(), WHERE)
    for client in _clients(server):
        assert name in [
            f["FunctionName"] for f in client.list_functions(MaxItems=10_000)["Functions"]
        ]
        assert client.get_function(FunctionName=name)["Configuration"]["State"] == "Active"
    for iam in _clients(server, service="iam"):
        assert iam.get_role(RoleName="lambda-role")["Role"]["RoleName"] == "lambda-role"
    for _ in range(CONNECTIONS):  # httpx.get: a connection of its own each time
        health = _health(server)
        assert health["status"] == "ok" and health["workers"]["expected"] == 1


def test_an_iam_users_calls_are_decided_by_its_policy_on_every_connection(
    server: LaminaServer,
) -> None:
    root = server.client()
    allowed = create_function(root, WHERE)
    other = create_function(root, WHERE)
    user = unique_name("user")
    iam = server.client("iam")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="invoke-one", PolicyDocument=_invoke_only(allowed))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    for client in _clients(
        server, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"]
    ):
        assert _invoke(client, allowed, {"who": user})["echo"] == {"who": user}
        with pytest.raises(ClientError) as err:
            client.invoke(FunctionName=other, Payload=b"{}")
        assert err.value.response["Error"]["Code"] == "AccessDeniedException"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_async_invokes_over_many_connections_all_run(server: LaminaServer) -> None:
    name = create_function(server.client(), WHERE)
    for i, client in enumerate(_clients(server)):
        response = client.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"id": i})
        )
        assert response["StatusCode"] == 202

    def ran(messages: list[str]) -> set[str]:
        return {m.split()[1] for m in messages if m.startswith("ran ")}

    expected = {str(i) for i in range(CONNECTIONS)}
    assert ran(log_messages(server, name, lambda m: ran(m) >= expected)) == expected


def test_worker_logs_are_readable_as_soon_as_the_invoke_returns(server: LaminaServer) -> None:
    name = create_function(server.client(), WHERE)
    _warm_both(server, name)
    request_ids, streams = [], []
    for client in _clients(server):
        response = client.invoke(FunctionName=name, Payload=b"{}")
        request_ids.append(response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"])
        streams.append(json.loads(response["Payload"].read())["stream"])
    owners = _owners(server)
    assert {owners[_env_id(s)] for s in streams} == {PRIMARY, 1}

    logs = server.client("logs")  # one read, no polling: the primary has workers flush first
    messages: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": f"/aws/lambda/{name}"}
    while True:
        page = logs.filter_log_events(**kwargs)
        messages += [e["message"] for e in page["events"]]
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    started = {m.split()[2] for m in messages if m.startswith("START RequestId: ")}
    assert set(request_ids) <= started


def test_the_account_limit_holds_across_processes(own_server: LaminaServer) -> None:
    limit = 4
    own_server.extra_env = {"LAMINA_CONCURRENCY_LIMIT": str(limit)}
    _start(own_server)
    name = create_function(own_server.client(), WHERE, Timeout=60)
    clients = _clients(own_server)
    outcomes = _run_together([lambda c=c: _invoke(c, name, {"sleep": 3}) for c in clients])
    ran = [o for o in outcomes if "stream" in o]
    throttled = [o for o in outcomes if "stream" not in o]
    assert len(ran) == limit
    assert len(throttled) == CONNECTIONS - limit
    for refusal in throttled:
        assert refusal["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert refusal["Error"]["Code"] == "TooManyRequestsException"
        assert refusal["Reason"] == "ConcurrentInvocationLimitExceeded"
    # Once they are done, the whole limit is free again, whichever process counted them.
    again = _run_together([lambda c=c: _invoke(c, name) for c in clients[:limit]])
    assert all("stream" in o for o in again)


def test_reserved_concurrency_holds_across_connections(server: LaminaServer) -> None:
    root = server.client()
    name = create_function(root, WHERE, Timeout=60)
    root.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    clients = _clients(server, 8)
    outcomes = _run_together([lambda c=c: _invoke(c, name, {"sleep": 2}) for c in clients])
    ran = [o for o in outcomes if "stream" in o]
    throttled = [o for o in outcomes if "stream" not in o]
    assert len(ran) == 1 and len(throttled) == len(clients) - 1
    for refusal in throttled:
        assert refusal["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert refusal["Error"]["Code"] == "TooManyRequestsException"
        assert refusal["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_a_killed_worker_is_started_again(server: LaminaServer) -> None:
    assert server.process is not None
    primary = server.process.pid
    name = create_function(server.client(), WHERE)
    _warm_both(server, name)
    old = int(_health(server)["workers"]["pids"]["1"])
    below_old = process_tree(old)
    assert below_old  # the worker's environments (and its spawner)

    os.kill(old, signal.SIGKILL)
    workers = _until_workers_ready(server, other_than=old)
    assert workers["ready"] == workers["expected"] == 1

    bodies = [_invoke(c, name, {"id": i}) for i, c in enumerate(_clients(server))]
    assert [b["echo"] for b in bodies] == [{"id": i} for i in range(CONNECTIONS)]
    # The new worker serves from environments of its own: a function with none anywhere
    # yet, called at once on every connection (`name`'s idle ones in the primary would
    # take the new worker's calls: placement).
    _warm_both(server, create_function(server.client(), WHERE))
    assert _until_gone(below_old) == []  # the dead worker's environments died with it
    assert [pid for pid, state, _ in process_tree(primary) if state == "Z"] == []


def test_sigterm_ends_the_primary_its_workers_and_every_environment(
    own_server: LaminaServer,
) -> None:
    _start(own_server)
    assert own_server.process is not None
    primary = own_server.process.pid
    name = create_function(own_server.client(), WHERE)
    _warm_both(own_server, name)
    environments = {int(row["pid"]) for row in _environments(own_server)}
    below = process_tree(primary)
    worker = int(_health(own_server)["workers"]["pids"]["1"])
    assert worker in {pid for pid, _, _ in below}
    assert environments <= {pid for pid, _, _ in below}

    own_server.stop(signal.SIGTERM)
    assert own_server.process.returncode is not None
    assert _until_gone(below) == []


def test_forwarded_calls_keep_the_clients_address(server: LaminaServer) -> None:
    name = create_function(server.client(), WHERE)
    _warm_both(server, name)
    since = int(time.time() * 1000) - 1000
    streams: dict[str, str] = {}  # GetFunction's request id -> its connection's invocation's stream
    for client in _clients(server):
        stream = _invoke(client, name)["stream"]  # which process the connection reached
        request_id = client.get_function(FunctionName=name)["ResponseMetadata"]["RequestId"]
        streams[request_id] = stream
    owners = _owners(server)
    request_ids = {rid: owners[_env_id(stream)] for rid, stream in streams.items()}
    assert set(request_ids.values()) == {PRIMARY, 1}

    response = httpx.get(
        f"{server.endpoint}/_lamina/audit",
        params={"since": since, "operation": "GetFunction"},
        headers={"Authorization": f"Bearer {server.secret_access_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    events = {
        e["request_id"]: e for e in response.json()["events"] if e["request_id"] in request_ids
    }
    assert set(events) == set(request_ids)
    assert {e["source_ip"] for e in events.values()} == {"127.0.0.1"}
    assert {e["resource"] for e in events.values()} == {name}


def test_internal_calls_are_refused_from_the_network(server: LaminaServer) -> None:
    """The primary answers workers' internal calls on its Unix socket only; a worker never
    sends one on from a client, even one that holds the root secret."""
    name = create_function(server.client(), WHERE)
    for _ in range(CONNECTIONS):  # a connection of its own each time: both processes
        response = httpx.post(
            f"{server.endpoint}/_lamina/internal/function-environment",
            json={"name": name, "version": "$LATEST"},
            headers={"Authorization": f"Bearer {server.secret_access_key}"},
            timeout=10,
        )
        assert response.status_code in (403, 404), response.text
        assert "AWS_SECRET_ACCESS_KEY" not in response.text


def test_a_deploy_pre_warms_the_new_revision_in_every_process_that_ran_the_old(
    server: LaminaServer,
) -> None:
    root = server.client()
    name = create_function(root, WHERE)
    _warm_both(server, name)
    old = {row["id"] for row in _environments(server) if row["function"] == name}
    root.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": WHERE.replace('"v1"', '"v2"')})
    )
    root.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    # The old revision's environments stop everywhere; new ones start in both processes
    # before any call needs them (each process replaces what it ran).
    deadline = time.monotonic() + 30
    while True:
        rows = [row for row in _environments(server) if row["function"] == name]
        idle = {int(row.get("worker", PRIMARY)) for row in rows if row["state"] == "idle"}
        settled = all(row["state"] == "idle" and row["id"] not in old for row in rows)
        if idle == {PRIMARY, 1} and settled:
            break
        assert time.monotonic() < deadline, f"not pre-warmed in both: {rows}"
        time.sleep(0.1)
    bodies = [_invoke(c, name) for c in _clients(server)]
    assert {b["release"] for b in bodies} == {"v2"}
    assert {_env_id(b["stream"]) for b in bodies} <= {row["id"] for row in rows}


def test_functions_in_every_process_call_lamina_with_their_roles_credentials(
    server: LaminaServer,
) -> None:
    """A worker's environments get their role's credentials from the primary (and reuse
    them per revision for a while); calls signed with them are checked by the primary,
    whichever process the function runs in and whichever its own call reaches."""
    iam = server.client("iam")
    role_name = unique_name("role")
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    root = server.client()
    allowed, forbidden = create_function(root, ECHO), create_function(root, ECHO)
    iam.put_role_policy(
        RoleName=role_name, PolicyName="invoke-one", PolicyDocument=_invoke_only(allowed)
    )
    caller = create_function(root, SIGNING_CLIENT, Role=role, Timeout=30)
    clients = _clients(server)

    def ask(client: Any, target: str) -> dict[str, Any]:
        payload = json.dumps({"call": "invoke", "target": target})
        response = client.invoke(FunctionName=caller, Payload=payload)
        result: dict[str, Any] = json.loads(response["Payload"].read())
        return result

    # At once, with none idle anywhere: both processes start environments of the caller.
    answers = _run_together([lambda c=c: ask(c, allowed) for c in clients])
    owners = {
        int(row.get("worker", PRIMARY))
        for row in _environments(server)
        if row["function"] == caller
    }
    assert owners == {PRIMARY, 1}
    for answer in answers:
        assert answer["has_credentials"] is True
        assert (answer["status"], json.loads(answer["body"])) == (200, {"ok": True})
    for client in clients:
        denied = ask(client, forbidden)
        assert denied["status"] == 403
        assert f"assumed-role/{role_name}/{caller}" in denied["body"]
