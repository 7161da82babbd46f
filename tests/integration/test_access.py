"""IAM on every request, Lambda resource policies, execution roles with temporary
credentials inside functions, and secrets sealed at rest — tested by attacking them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.support import (
    LAMBDA_TRUST,
    LaminaServer,
    create_function,
    ensure_execution_role,
    unique_name,
)

ECHO = "def handler(event, context):\n    return {'ok': True}\n"

# A stdlib-only SigV4 client inside the function: it calls lamina with the execution
# role's temporary credentials from its environment, as boto3 would.
SIGNING_CLIENT = r'''
import datetime, hashlib, hmac, json, os, urllib.error, urllib.request, urllib.parse

def _sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()

def call(service, method, path, body=b"", headers=None):
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    host = urllib.parse.urlparse(endpoint).netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    region = os.environ["AWS_REGION"]
    headers = dict(headers or {})
    headers.update({"host": host, "x-amz-date": amz_date,
                    "x-amz-security-token": os.environ["AWS_SESSION_TOKEN"]})
    signed = ";".join(sorted(k.lower() for k in headers))
    canonical_headers = "".join(f"{k.lower()}:{headers[k].strip()}\n" for k in sorted(headers, key=str.lower))
    canonical = "\n".join([method, path, "", canonical_headers, signed, hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode(), day)
    for part in (region, service, "aws4_request"):
        key = _sign(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    request = urllib.request.Request(endpoint + path, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()

def handler(event, context):
    if event["call"] == "invoke":
        status, body = call("lambda", "POST", f"/2015-03-31/functions/{event['target']}/invocations", b"{}")
    else:
        payload = json.dumps({"SecretId": event["secret"]}).encode()
        status, body = call("secretsmanager", "POST", "/", payload,
                            {"Content-Type": "application/x-amz-json-1.1",
                             "X-Amz-Target": "secretsmanager.GetSecretValue"})
    return {"status": status, "body": body,
            "has_credentials": bool(os.environ.get("AWS_SESSION_TOKEN"))}
'''


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _user_client(server: LaminaServer, name: str, policy: str) -> Any:
    iam = server.client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return server.client("lambda", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])


def test_execution_role_must_exist_and_trust_lambda(lamina_server: LaminaServer, lambda_client: Any) -> None:
    from tests.integration.support import make_zip

    def create(role: str) -> dict[str, Any]:
        with pytest.raises(ClientError) as err:
            lambda_client.create_function(
                FunctionName=unique_name(), Runtime="python3.11", Role=role, Handler="app.handler",
                Code={"ZipFile": make_zip({"app.py": ECHO})},
            )  # fmt: skip
        return err.value.response

    missing = create("arn:aws:iam::000000000000:role/no-such-role")
    assert missing["Error"]["Code"] == "InvalidParameterValueException"
    assert "cannot be assumed by Lambda" in missing["Error"]["Message"]
    iam = lamina_server.client("iam")
    untrusting = _policy({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})
    role = iam.create_role(RoleName=unique_name("ec2"), AssumeRolePolicyDocument=untrusting)["Role"]["Arn"]
    assert create(role)["Error"]["Code"] == "InvalidParameterValueException"


def test_user_may_do_only_what_its_policy_allows(lamina_server: LaminaServer, lambda_client: Any) -> None:
    allowed = create_function(lambda_client, ECHO, name=unique_name("app"))
    other = create_function(lambda_client, ECHO, name=unique_name("other"))
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{allowed}"
    user = _user_client(
        lamina_server, unique_name("user"),
        _policy({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": arn}),
    )  # fmt: skip
    assert json.loads(user.invoke(FunctionName=allowed, Payload=b"{}")["Payload"].read()) == {"ok": True}
    for call in (
        lambda: user.invoke(FunctionName=other, Payload=b"{}"),
        lambda: user.list_functions(),
        lambda: user.delete_function(FunctionName=allowed),
    ):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert err.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "is not authorized to perform: lambda:" in err.value.response["Error"]["Message"]
    assert lambda_client.get_function(FunctionName=allowed)["Configuration"]["FunctionName"] == allowed


def test_explicit_deny_wins(lamina_server: LaminaServer, lambda_client: Any) -> None:
    name = create_function(lambda_client, ECHO)
    user = _user_client(
        lamina_server, unique_name("denied"),
        _policy(
            {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "lambda:InvokeFunction", "Resource": "*"},
        ),
    )  # fmt: skip
    assert user.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name
    with pytest.raises(ClientError) as err:
        user.invoke(FunctionName=name, Payload=b"{}")
    assert "explicit deny" in err.value.response["Error"]["Message"]


def test_resource_policy_grants_and_revokes(lamina_server: LaminaServer, lambda_client: Any) -> None:
    name = create_function(lambda_client, ECHO)
    user_name = unique_name("caller")
    user = _user_client(lamina_server, user_name, _policy({"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"}))
    with pytest.raises(ClientError):
        user.invoke(FunctionName=name, Payload=b"{}")
    user_arn = f"arn:aws:iam::000000000000:user/{user_name}"
    added = lambda_client.add_permission(
        FunctionName=name, StatementId="let-caller", Action="lambda:InvokeFunction", Principal=user_arn
    )
    assert json.loads(added["Statement"])["Principal"] == {"AWS": user_arn}
    assert user.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    policy = json.loads(lambda_client.get_policy(FunctionName=name)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["let-caller"]
    with pytest.raises(ClientError) as err:
        lambda_client.add_permission(
            FunctionName=name, StatementId="let-caller", Action="lambda:InvokeFunction", Principal=user_arn
        )
    assert err.value.response["Error"]["Code"] == "ResourceConflictException"
    lambda_client.remove_permission(FunctionName=name, StatementId="let-caller")
    with pytest.raises(ClientError):
        user.invoke(FunctionName=name, Payload=b"{}")
    with pytest.raises(ClientError) as err:
        lambda_client.get_policy(FunctionName=name)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_function_calls_lamina_with_its_role_only(lamina_server: LaminaServer, lambda_client: Any) -> None:
    iam = lamina_server.client("iam")
    role_name = unique_name("role")
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    allowed_target = create_function(lambda_client, ECHO)
    forbidden_target = create_function(lambda_client, ECHO)
    iam.put_role_policy(
        RoleName=role_name, PolicyName="invoke-one",
        PolicyDocument=_policy({
            "Effect": "Allow", "Action": "lambda:InvokeFunction",
            "Resource": f"arn:aws:lambda:us-east-1:000000000000:function:{allowed_target}",
        }),
    )  # fmt: skip
    caller = create_function(lambda_client, SIGNING_CLIENT, Role=role, Timeout=30)

    def ask(target: str) -> dict[str, Any]:
        payload = json.dumps({"call": "invoke", "target": target})
        return json.loads(lambda_client.invoke(FunctionName=caller, Payload=payload)["Payload"].read())

    ok = ask(allowed_target)
    assert ok["has_credentials"] is True
    assert (ok["status"], json.loads(ok["body"])) == (200, {"ok": True})
    denied = ask(forbidden_target)
    assert denied["status"] == 403
    assert "AccessDeniedException" in denied["body"] or "not authorized" in denied["body"]
    assert f"assumed-role/{role_name}/{caller}" in denied["body"]


def test_secrets_readable_only_through_the_role(lamina_server: LaminaServer, lambda_client: Any) -> None:
    sm = lamina_server.client("secretsmanager")
    secret_name = unique_name("db-password")
    secret_arn = sm.create_secret(Name=secret_name, SecretString="hunter2-very-secret")["ARN"]
    iam = lamina_server.client("iam")
    reader_role = unique_name("reader")
    arn = iam.create_role(RoleName=reader_role, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=reader_role, PolicyName="read",
        PolicyDocument=_policy({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn}),
    )  # fmt: skip
    reader = create_function(lambda_client, SIGNING_CLIENT, Role=arn, Timeout=30)
    stranger = create_function(lambda_client, SIGNING_CLIENT, Role=ensure_execution_role(iam), Timeout=30)
    payload = json.dumps({"call": "secret", "secret": secret_name})
    got = json.loads(lambda_client.invoke(FunctionName=reader, Payload=payload)["Payload"].read())
    assert got["status"] == 200 and json.loads(got["body"])["SecretString"] == "hunter2-very-secret"
    refused = json.loads(lambda_client.invoke(FunctionName=stranger, Payload=payload)["Payload"].read())
    assert refused["status"] == 403


def test_environment_variables_and_secrets_are_sealed_at_rest(lamina_server: LaminaServer, lambda_client: Any) -> None:
    marker = "sealed-" + unique_name("value")
    name = create_function(lambda_client, ECHO, Environment={"Variables": {"API_TOKEN": marker}})
    assert lambda_client.get_function_configuration(FunctionName=name)["Environment"]["Variables"] == {"API_TOKEN": marker}
    lamina_server.client("secretsmanager").create_secret(Name=unique_name("s"), SecretString=marker + "-secret")
    for path in lamina_server.data_dir.glob("*.db*"):
        assert marker.encode() not in path.read_bytes(), path


def test_customer_key_variables_need_kms_decrypt(lamina_server: LaminaServer, lambda_client: Any) -> None:
    key_arn = lamina_server.client("kms").create_key(Description="fn env")["KeyMetadata"]["Arn"]
    name = create_function(
        lambda_client, ECHO, KMSKeyArn=key_arn, Environment={"Variables": {"TOKEN": "t0p"}}
    )
    root_view = lambda_client.get_function_configuration(FunctionName=name)
    assert root_view["KMSKeyArn"] == key_arn
    assert root_view["Environment"]["Variables"] == {"TOKEN": "t0p"}
    reader = _user_client(
        lamina_server, unique_name("reader"),
        _policy({"Effect": "Allow", "Action": "lambda:GetFunctionConfiguration", "Resource": "*"}),
    )  # fmt: skip
    hidden = reader.get_function_configuration(FunctionName=name)["Environment"]
    assert "Variables" not in hidden
    assert hidden["Error"]["ErrorCode"] == "AccessDeniedException"
    # and the function itself still gets its variables
    assert json.loads(lambda_client.invoke(FunctionName=name, Payload=b"{}")["Payload"].read()) == {"ok": True}
