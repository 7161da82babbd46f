"""Environments over time: idle ones are reclaimed (scale to zero) and a later call still
works; nothing leaks — no zombie processes, no growth of open files — over 10,000
invocations."""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.support import LaminaServer, create_function, make_zip, process_tree

NOOP = "def handler(event, context):\n    return None\n"


def _environments(server: LaminaServer) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.endpoint}/_lamina/environments",
        headers={"Authorization": f"Bearer {server.secret_access_key}"},
    )
    rows: list[dict[str, Any]] = response.json()["environments"]
    return rows


def test_idle_environments_are_reclaimed_and_come_back(fresh_server: LaminaServer) -> None:
    fresh_server.extra_env = {"LAMINA_IDLE_ENVIRONMENT_S": "1"}
    fresh_server.start()
    client = fresh_server.client()
    name = create_function(client, NOOP)
    assert client.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    assert any(e["function"] == name for e in _environments(fresh_server))
    deadline = time.monotonic() + 30
    while any(e["function"] == name for e in _environments(fresh_server)):
        assert time.monotonic() < deadline, "the idle environment was never reclaimed"
        time.sleep(0.2)
    assert client.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200


RELEASE = """import os
import time


def handler(event, context):
    time.sleep(event.get("hold", 0))
    return {"release": RELEASE, "init": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
"""


def test_an_update_pre_warms_as_many_environments_as_were_live(
    lamina_server: LaminaServer,
) -> None:
    client = lamina_server.client()
    name = create_function(client, 'RELEASE = "v1"\n' + RELEASE)
    with ThreadPoolExecutor(2) as pool:  # two overlapping calls: two environments
        calls = [
            pool.submit(client.invoke, FunctionName=name, Payload=b'{"hold": 0.5}')
            for _ in range(2)
        ]
        assert [c.result()["StatusCode"] for c in calls] == [200, 200]
    assert len([e for e in _environments(lamina_server) if e["function"] == name]) == 2

    client.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": 'RELEASE = "v2"\n' + RELEASE})
    )
    client.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    revision = client.get_function_configuration(FunctionName=name)["RevisionId"]
    # The old revision's environments are retired; two of the new one start unasked. (A
    # worker follows the change within 0.25 s: an old one may be listed until then.)
    deadline = time.monotonic() + 30
    while True:
        mine = [e for e in _environments(lamina_server) if e["function"] == name]
        idle = [e for e in mine if e["state"] == "idle" and e["revision"] == revision]
        if len(idle) == 2 and len(mine) == 2:
            break
        assert time.monotonic() < deadline, f"not pre-warmed: {mine}"
        time.sleep(0.1)
    response = client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    assert json.loads(response["Payload"].read()) == {"release": "v2", "init": "on-demand"}
    report = base64.b64decode(response["LogResult"]).decode()
    assert "REPORT RequestId" in report and "Init Duration" not in report
    assert {e["id"] for e in _environments(lamina_server) if e["function"] == name} == {
        e["id"] for e in idle
    }


def test_updates_pre_warm_nothing_when_turned_off(fresh_server: LaminaServer) -> None:
    fresh_server.extra_env = {"LAMINA_PREWARM_ON_DEPLOY": "0"}
    fresh_server.start()
    client = fresh_server.client()
    name = create_function(client, 'RELEASE = "v1"\n' + RELEASE)
    assert client.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    client.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": 'RELEASE = "v2"\n' + RELEASE})
    )
    client.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    time.sleep(1.0)  # what a pre-warm would take, and then some
    assert not [e for e in _environments(fresh_server) if e["function"] == name]


@pytest.mark.slow
def test_nothing_leaks_over_10000_invocations(fresh_server: LaminaServer) -> None:
    fresh_server.start()
    client = fresh_server.client()
    name = create_function(client, NOOP)
    assert fresh_server.process is not None
    server_pid = fresh_server.process.pid

    # One signed request replayed over one keep-alive connection: the load is lamina's.
    url = f"{fresh_server.endpoint}/2015-03-31/functions/{name}/invocations"
    request = AWSRequest(method="POST", url=url, data=b"{}")
    SigV4Auth(
        Credentials(fresh_server.access_key_id, fresh_server.secret_access_key), "lambda", "us-east-1"
    ).add_auth(request)
    headers = dict(request.headers.items())
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port)

    def invoke() -> None:
        connection.request("POST", parsed.path, body=b"{}", headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        response.read()

    for _ in range(200):  # warm up: environments, caches, pools
        invoke()
    fds_before = len(os.listdir(f"/proc/{server_pid}/fd"))
    for _ in range(10_000):
        invoke()
    fds_after = len(os.listdir(f"/proc/{server_pid}/fd"))
    connection.close()
    assert fds_after <= fds_before + 5, (fds_before, fds_after)
    zombies = [pid for pid, state, _ in process_tree(server_pid) if state == "Z"]
    assert zombies == []
