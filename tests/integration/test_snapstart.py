"""SnapStart for Python: PublishVersion runs init once in a template; new environments
of that version are forks of it, with Lambda's runtime hooks around the snapshot."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.exceptions import WaiterError

from tests.integration.support import LaminaServer, create_function, log_messages

SLOW_INIT = """
import os, random, time
from snapshot_restore_py import register_after_restore, register_before_snapshot

def note(what):
    print("hook:", what, flush=True)

note("init")
time.sleep(1.0)  # stands in for heavy imports (boto3, numpy, a model)
SEED = random.random()

@register_before_snapshot
def before():
    note("before_snapshot")

@register_after_restore
def after(tag="restored"):
    note("after_restore " + tag)

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"pid": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"], "random": random.random(), "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
            "key": os.environ.get("AWS_ACCESS_KEY_ID")}
"""


def _invoke(client: Any, name: str, qualifier: str, payload: bytes = b"{}") -> tuple[dict[str, Any], str]:
    response = client.invoke(FunctionName=name, Qualifier=qualifier, Payload=payload, LogType="Tail")
    return json.loads(response["Payload"].read()), base64.b64decode(response["LogResult"]).decode()


def _hooks(server: LaminaServer, name: str, until: Any = None) -> list[str]:
    return [m.split("hook: ", 1)[1] for m in log_messages(server, name, until) if m.startswith("hook: ")]


def test_snapstart_version_restores_from_snapshot(lamina_server: LaminaServer, lambda_client: Any) -> None:
    name = create_function(
        lambda_client, SLOW_INIT, runtime="python3.12", Timeout=30,
        SnapStart={"ApplyOn": "PublishedVersions"},
    )  # fmt: skip
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert config["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.get_waiter("published_version_active").wait(
        FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    published = lambda_client.get_function_configuration(FunctionName=name, Qualifier=version)
    assert published["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
    assert _hooks(lamina_server, name, lambda m: len(m) >= 2) == ["init", "before_snapshot"]

    first, log = _invoke(lambda_client, name, version)
    assert first["init_type"] == "snap-start"
    report = next(line for line in log.splitlines() if line.startswith("REPORT"))
    assert "Restore Duration:" in report and "Init Duration" not in report

    # overlapping calls need more environments: each is another fork of the snapshot,
    # and init does not run again
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(lambda _: _invoke(lambda_client, name, version, b'{"sleep": 0.5}')[0], range(3))
        )
    pids = {r["pid"] for r in results} | {first["pid"]}
    assert len(pids) >= 3
    lines = _hooks(lamina_server, name, lambda m: sum("after_restore" in x for x in m) >= len(pids))
    assert lines.count("init") == 1 and lines.count("before_snapshot") == 1
    assert lines.count("after_restore restored") == len(pids)
    # each restored environment reseeded `random`: no two share the snapshot's state
    assert len({r["random"] for r in results} | {first["random"]}) == len(results) + 1
    # and each has credentials of its own, not the snapshot's
    keys = {r["pid"]: r["key"] for r in [*results, first]}
    assert all(keys.values()) and len(set(keys.values())) == len(keys)


def test_snapstart_init_error_fails_the_version(lambda_client: Any) -> None:
    name = create_function(
        lambda_client, "raise RuntimeError('broken init')\ndef handler(e, c):\n    return 1\n",
        runtime="python3.12", SnapStart={"ApplyOn": "PublishedVersions"},
    )  # fmt: skip
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    # the waiter itself fails on State=Failed: that is the expected outcome
    with pytest.raises(WaiterError, match="Failed"):
        lambda_client.get_waiter("published_version_active").wait(
            FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
    config = lambda_client.get_function_configuration(FunctionName=name, Qualifier=version)
    assert config["State"] == "Failed"
    assert "broken init" in config["StateReason"]
