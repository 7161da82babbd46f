"""The audit log against a real `lamina serve`: every control-plane call, denied ones
with their principal, read back with `lamina audit`, and never a secret value."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.support import LAMINA, LaminaServer, create_function, unique_name

ECHO = "def handler(event, context):\n    return {'ok': True}\n"


def audit_cli(server: LaminaServer, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [LAMINA, "audit", "--json", "--since", "10m", *args],
        env=server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def user_lambda_client(server: LaminaServer, name: str, policy: dict[str, Any]) -> tuple[Any, str]:
    iam = server.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    client = server.client(
        "lambda", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"]
    )
    return client, str(arn)


def test_a_denied_call_is_recorded_with_its_principal(lamina_server: LaminaServer) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "lambda:ListFunctions", "Resource": "*"}],
    }
    client, arn = user_lambda_client(lamina_server, unique_name("auditee"), policy)
    client.list_functions()
    target = unique_name()
    with pytest.raises(ClientError) as denied:
        client.delete_function(FunctionName=target)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"

    events = audit_cli(lamina_server, "--principal", arn)
    assert [(e["operation"], e["allowed"]) for e in events] == [
        ("ListFunctions", True),
        ("DeleteFunction", False),
    ]
    refusal = events[1]
    assert refusal["principal_arn"] == arn and refusal["resource"] == target
    assert refusal["error_code"] == "AccessDeniedException"
    assert refusal["service"] == "lambda" and refusal["source_ip"] == "127.0.0.1"
    assert refusal["request_id"] == denied.value.response["ResponseMetadata"]["RequestId"]
    only_denied = audit_cli(lamina_server, "--denied", "--principal", arn)
    assert [e["operation"] for e in only_denied] == ["DeleteFunction"]


def test_create_and_delete_are_recorded_and_invokes_are_not(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    name = create_function(lambda_client, ECHO)
    lambda_client.invoke(FunctionName=name)
    lambda_client.delete_function(FunctionName=name)
    events = [e for e in audit_cli(lamina_server) if e["resource"] == name]
    operations = [e["operation"] for e in events]
    assert operations[0] == "CreateFunction" and operations[-1] == "DeleteFunction"
    assert "Invoke" not in operations  # the data plane is left out unless denied
    assert all(
        e["principal_arn"] == "arn:aws:iam::000000000000:root" and e["allowed"] for e in events
    )


def test_secret_values_never_reach_the_audit_database(
    lamina_server: LaminaServer, lambda_client: Any
) -> None:
    env_secret = f"env-secret-{time.time_ns()}"
    stored_secret = f"stored-secret-{time.time_ns()}"
    name = create_function(lambda_client, ECHO, Environment={"Variables": {"TOKEN": env_secret}})
    lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"TOKEN": env_secret + "-2"}}
    )
    secrets = lamina_server.client("secretsmanager")
    secret_name = unique_name("audit-secret")
    secrets.create_secret(Name=secret_name, SecretString=stored_secret)
    secrets.put_secret_value(SecretId=secret_name, SecretString=stored_secret + "-2")
    secrets.get_secret_value(SecretId=secret_name)
    events = audit_cli(lamina_server, "--operation", "PutSecretValue")
    assert [e["resource"] for e in events if e["resource"] == secret_name] == [secret_name]
    raw = b"".join(
        path.read_bytes()
        for path in lamina_server.data_dir.glob("audit.db*")  # the database and its WAL
    )
    assert name.encode() in raw and secret_name.encode() in raw
    for value in (env_secret, stored_secret):
        assert value.encode() not in raw


def test_the_endpoint_is_for_the_root_only(lamina_server: LaminaServer) -> None:
    url = f"{lamina_server.endpoint}/_lamina/audit"
    assert httpx.get(url).status_code == 403
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    good = {"Authorization": f"Bearer {lamina_server.secret_access_key}"}
    assert httpx.get(url, headers=good, params={"since": "x"}).status_code == 400
    assert httpx.get(url, headers=good).json()["count"] >= 0


def test_the_audit_log_survives_a_restart(fresh_server: LaminaServer) -> None:
    fresh_server.start()
    client = fresh_server.client("lambda")
    client.list_functions()
    fresh_server.stop()
    fresh_server.start()
    assert "ListFunctions" in [e["operation"] for e in audit_cli(fresh_server)]
