"""Provisioned concurrency: N initialised environments of a version kept ready,
replaced when they die, with spillover to on-demand environments."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.support import LaminaServer, create_function, log_messages

CODE = """
import os, time
print("init:", os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"])

def handler(event, context):
    if event.get("exit") and os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency":
        os._exit(3)  # a provisioned environment dies, as a crash would
    time.sleep(event.get("sleep", 0))
    return {"pid": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"], "init_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
"""


def _wait_status(client: Any, name: str, qualifier: str, want: str, allocated: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        state = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if state["Status"] == want and state["AllocatedProvisionedConcurrentExecutions"] == allocated:
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def _invoke(client: Any, name: str, qualifier: str, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    response = client.invoke(
        FunctionName=name, Qualifier=qualifier, Payload=json.dumps(payload), LogType="Tail"
    )
    return json.loads(response["Payload"].read()), base64.b64decode(response["LogResult"]).decode()


def _inits(server: LaminaServer, name: str, until: Any = None) -> list[str]:
    return [m.split()[1] for m in log_messages(server, name, until) if m.startswith("init: ")]


def test_provisioned_environments_are_warm_replaced_and_spill_over(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    name = create_function(lambda_client, CODE, Timeout=30)
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    put = lambda_client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=2
    )
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] in ("IN_PROGRESS", "READY")
    _wait_status(lambda_client, name, version, "READY", 2)
    assert _inits(lamina_server, name, lambda m: len(m) >= 2) == ["provisioned-concurrency"] * 2

    body, log = _invoke(lambda_client, name, version, {})
    assert body["init_type"] == "provisioned-concurrency"
    assert "Init Duration" not in log  # its init happened before the invocation

    # two slow calls occupy both provisioned environments; a third spills over
    with ThreadPoolExecutor(3) as pool:
        bodies = list(pool.map(lambda _: _invoke(lambda_client, name, version, {"sleep": 1})[0], range(3)))
    kinds = sorted(b["init_type"] for b in bodies)
    assert kinds.count("provisioned-concurrency") >= 2
    assert "on-demand" in kinds

    # a provisioned environment that dies is replaced
    # (overlapping calls reach every idle environment; only provisioned ones exit)
    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(lambda _: _invoke(lambda_client, name, version, {"exit": True, "sleep": 1})[0], range(3)))
    assert any(o.get("errorType") == "Runtime.ExitError" for o in outcomes), outcomes
    inits = _inits(lamina_server, name, lambda m: sum("provisioned" in x for x in m) >= 3)
    assert inits.count("provisioned-concurrency") >= 3
    _wait_status(lambda_client, name, version, "READY", 2)

    listed = lambda_client.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"].rsplit(":", 1)[-1] for c in listed] == [version]

    lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    with pytest.raises(ClientError) as err:
        lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    assert err.value.response["Error"]["Code"] == "ProvisionedConcurrencyConfigNotFoundException"


def test_provisioned_concurrency_needs_a_published_version(lambda_client: Any) -> None:
    name = create_function(lambda_client, "def handler(e, c):\n    return 1\n")
    with pytest.raises(ClientError) as err:
        lambda_client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as err:
        lambda_client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="7", ProvisionedConcurrentExecutions=1
        )
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_lamina_envs_reports_memory(lamina_server: Any, lambda_client: Any) -> None:
    import subprocess
    import sys

    name = create_function(lambda_client, "def handler(e, c):\n    return 1\n")
    lambda_client.invoke(FunctionName=name, Payload=b"{}")
    import httpx

    denied = httpx.get(f"{lamina_server.endpoint}/_lamina/environments")
    assert denied.status_code == 403
    data = httpx.get(
        f"{lamina_server.endpoint}/_lamina/environments",
        headers={"Authorization": f"Bearer {lamina_server.secret_access_key}"},
    ).json()
    mine = [e for e in data["environments"] if e["function"] == name]
    assert len(mine) == 1 and mine[0]["state"] == "idle"
    assert 0 < mine[0]["uss_kb"] <= mine[0]["pss_kb"] <= mine[0]["rss_kb"]
    # The figures are the whole environment's: with a sandbox, its init and the
    # function's own process below it (at least the function's own private pages).
    below = _children(mine[0]["pid"])
    if below:
        assert mine[0]["uss_kb"] > _private_kb(below[0])
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "lamina"), "envs"],
        env=lamina_server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert name[:20] in cli.stdout or name in cli.stdout.replace("\n", "")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _private_kb(pid: int) -> int:
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Private_Clean", "Private_Dirty"):
            total += int(rest.split()[0])
    return total
