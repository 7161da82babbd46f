"""SigV4 on every request; state that survives restarts; logs stored per function."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.support import LaminaServer, create_function


def test_unsigned_requests_are_refused(lamina_server: LaminaServer) -> None:
    response = httpx.get(f"{lamina_server.endpoint}/2015-03-31/functions/")
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"].startswith("MissingAuthenticationToken")


def test_wrong_secret_and_unknown_key_are_refused(lamina_server: LaminaServer) -> None:
    wrong_secret = lamina_server.client(secret_key="not-the-secret")
    with pytest.raises(ClientError) as err:
        wrong_secret.list_functions()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
    unknown = lamina_server.client(access_key="LKIAUNKNOWNKEY000000")
    with pytest.raises(ClientError) as err:
        unknown.list_functions()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_generated_credentials_are_stored_and_reused(fresh_server: LaminaServer) -> None:
    fresh_server.extra_env = {"LAMINA_ACCESS_KEY_ID": "", "LAMINA_SECRET_ACCESS_KEY": ""}
    fresh_server.ensure_role = False  # the test learns the generated keys only after start
    fresh_server.start()
    stored = json.loads((fresh_server.data_dir / "credentials.json").read_text())
    assert (fresh_server.data_dir / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert stored["secret_access_key"] in fresh_server.log_text()  # printed once
    fresh_server.access_key_id = stored["access_key_id"]
    fresh_server.secret_access_key = stored["secret_access_key"]
    assert fresh_server.client().list_functions()["Functions"] == []
    fresh_server.stop()
    fresh_server.start()
    assert fresh_server.client().list_functions()["Functions"] == []


def test_state_survives_restart(fresh_server: LaminaServer) -> None:
    fresh_server.start()
    client = fresh_server.client()
    name = create_function(client, "def handler(e, c):\n    return 'one'\n", Environment={"Variables": {"K": "V"}})
    client.publish_version(FunctionName=name)
    client.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    before = client.get_function_configuration(FunctionName=name)
    fresh_server.stop()

    fresh_server.start()
    client = fresh_server.client()
    after = client.get_function_configuration(FunctionName=name)
    for key in ("CodeSha256", "RevisionId", "Environment", "Handler", "Runtime", "LastModified"):
        assert after[key] == before[key]
    assert [v["Version"] for v in client.list_versions_by_function(FunctionName=name)["Versions"]] == ["$LATEST", "1"]
    assert client.get_alias(FunctionName=name, Name="prod")["FunctionVersion"] == "1"
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    assert client.get_function_event_invoke_config(FunctionName=name)["MaximumRetryAttempts"] == 1
    response = client.invoke(FunctionName=name, Qualifier="prod", Payload=b"{}")
    assert json.loads(response["Payload"].read()) == "one"


def test_logs_are_stored_per_function_and_version(lamina_server: LaminaServer, lambda_client: Any) -> None:
    code = "def handler(event, context):\n    print('marker', event['n'])\n    return 1\n"
    name = create_function(lambda_client, code)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.invoke(FunctionName=name, Payload=b'{"n": 1}')
    lambda_client.invoke(FunctionName=name, Qualifier="1", Payload=b'{"n": 2}')
    logs = lamina_server.client("logs")
    group = f"/aws/lambda/{name}"
    deadline = time.monotonic() + 10
    messages: list[str] = []
    while time.monotonic() < deadline:
        events = logs.filter_log_events(logGroupName=group)["events"]
        messages = [e["message"] for e in events]
        if sum(m.startswith("REPORT") for m in messages) >= 2:
            break
        time.sleep(0.1)
    assert any(m.startswith("START RequestId:") for m in messages)
    assert any(m.startswith("END RequestId:") for m in messages)
    assert sum(m.startswith("REPORT RequestId:") for m in messages) == 2
    assert any("Init Duration" in m for m in messages)
    assert any(m.rstrip() == "marker 1" for m in messages)
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert any("[$LATEST]" in s for s in streams)
    assert any("[1]" in s for s in streams)
    only_marker = logs.filter_log_events(logGroupName=group, filterPattern='"marker 2"')["events"]
    assert [e["message"].rstrip() for e in only_marker] == ["marker 2"]
