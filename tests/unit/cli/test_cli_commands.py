"""The client commands through typer's CliRunner, against fake boto3 clients."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from botocore.exceptions import ClientError, EndpointConnectionError
from typer.testing import CliRunner

from lamina.cli import client_commands, runtimes
from lamina.cli.connection import Connection
from lamina.cli.logs import LogTail, follow_events, format_event, parse_since, qualifier_versions

ENV = {"LAMINA_ACCESS_KEY_ID": "AK", "LAMINA_SECRET_ACCESS_KEY": "SK"}


def not_found(operation: str, message: str = "Function not found: fn") -> ClientError:
    error = {"Error": {"Code": "ResourceNotFoundException", "Message": message}}
    return ClientError(error, operation)  # type: ignore[arg-type]


class FakeWaiter:
    def __init__(self, calls: list[tuple[str, dict[str, Any]]], name: str) -> None:
        self.calls, self.name = calls, name

    def wait(self, **kwargs: Any) -> None:
        self.calls.append((f"wait:{self.name}", kwargs))


class FakeLambda:
    def __init__(self, exists: bool = False) -> None:
        self.exists = exists
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.invoke_response: dict[str, Any] = {}
        self.functions: list[dict[str, Any]] = []

    def get_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("get_function_configuration", kwargs))
        if not self.exists:
            raise not_found("GetFunctionConfiguration")
        return {
            "FunctionName": kwargs["FunctionName"],
            "FunctionArn": f"arn:aws:lambda:us-east-1:000000000000:function:{kwargs['FunctionName']}",
            "Version": "$LATEST",
            "State": "Active",
            "LastUpdateStatus": "Successful",
        }

    def create_function(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("create_function", kwargs))
        self.exists = True
        return {}

    def update_function_code(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("update_function_code", kwargs))
        return {}

    def update_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("update_function_configuration", kwargs))
        return {}

    def get_waiter(self, name: str) -> FakeWaiter:
        return FakeWaiter(self.calls, name)

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("invoke", kwargs))
        response = dict(self.invoke_response)
        response["Payload"] = io.BytesIO(response.get("Payload", b"null"))
        return response

    def get_alias(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "FunctionVersion": "2",
            "RoutingConfig": {"AdditionalVersionWeights": {"3": 0.1}},
        }

    def get_paginator(self, name: str) -> Any:
        functions = self.functions

        class Paginator:
            def paginate(self) -> list[dict[str, Any]]:
                return [{"Functions": functions[:1]}, {"Functions": functions[1:]}]

        return Paginator()


class FakeIam:
    """IAM as deploy sees it: the default execution role is made once."""

    class exceptions:  # mirrors boto3's client.exceptions namespace
        class EntityAlreadyExistsException(Exception):
            pass

    def __init__(self) -> None:
        self.roles: dict[str, str] = {}
        self.attached: list[tuple[str, str]] = []

    def create_role(self, **kwargs: Any) -> dict[str, Any]:
        if kwargs["RoleName"] in self.roles:
            raise self.exceptions.EntityAlreadyExistsException()
        self.roles[kwargs["RoleName"]] = kwargs["AssumeRolePolicyDocument"]
        return {"Role": {"Arn": f"arn:aws:iam::000000000000:role/{kwargs['RoleName']}"}}

    def attach_role_policy(self, **kwargs: Any) -> None:
        self.attached.append((kwargs["RoleName"], kwargs["PolicyArn"]))


@pytest.fixture
def app() -> typer.Typer:
    cli = typer.Typer()
    client_commands.register(cli)
    return cli


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLambda:
    client = FakeLambda()
    iam = FakeIam()
    monkeypatch.setattr(Connection, "client", lambda self, service: iam if service == "iam" else client)
    client.iam = iam  # type: ignore[attr-defined]
    return client


def run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=ENV)


def function_dir(tmp_path: Path) -> Path:
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text("def handler(e, c):\n    return e\n")
    return tmp_path / "fn"


def test_deploy_creates_then_waits_and_prints(
    app: typer.Typer, fake: FakeLambda, tmp_path: Path
) -> None:
    folder = function_dir(tmp_path)
    result = run(
        app,
        "deploy",
        str(folder),
        "--name",
        "fn",
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
        "--memory",
        "256",
        "--env",
        "A=1",
        "-e",
        "B=x=y",
    )
    assert result.exit_code == 0, result.output
    names = [name for name, _ in fake.calls]
    assert names == [
        "get_function_configuration",
        "create_function",
        "wait:function_active_v2",
        "get_function_configuration",
    ]
    create = fake.calls[1][1]
    assert create["Runtime"] == "python3.12" and create["MemorySize"] == 256
    assert create["Environment"] == {"Variables": {"A": "1", "B": "x=y"}}
    assert create["Role"] == "arn:aws:iam::000000000000:role/lamina-function"
    assert "Timeout" not in create
    with zipfile.ZipFile(io.BytesIO(create["Code"]["ZipFile"])) as archive:
        assert archive.namelist() == ["app.py"]
    assert "FunctionArn: arn:aws:lambda:us-east-1:000000000000:function:fn" in result.stdout
    assert "State: Active" in result.stdout


def test_deploy_updates_code_then_configuration(
    app: typer.Typer, fake: FakeLambda, tmp_path: Path
) -> None:
    fake.exists = True
    result = run(
        app,
        "deploy",
        str(function_dir(tmp_path)),
        "--name",
        "fn",
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
        "--timeout",
        "9",
    )
    assert result.exit_code == 0, result.output
    assert [name for name, _ in fake.calls] == [
        "get_function_configuration",
        "update_function_code",
        "wait:function_updated_v2",
        "update_function_configuration",
        "wait:function_updated_v2",
        "get_function_configuration",
    ]
    assert fake.calls[3][1]["Timeout"] == 9
    assert "Role" not in fake.calls[3][1]  # an update keeps the function's role


def test_deploy_reports_server_errors_without_traceback(
    app: typer.Typer, fake: FakeLambda, tmp_path: Path
) -> None:
    def refuse(**kwargs: Any) -> None:
        error = {
            "Error": {
                "Code": "InvalidParameterValueException",
                "Message": "Runtime python2.7 is not supported",
            }
        }
        raise ClientError(error, "CreateFunction")  # type: ignore[arg-type]

    fake.create_function = refuse  # type: ignore[method-assign]
    result = run(
        app,
        "deploy",
        str(function_dir(tmp_path)),
        "--name",
        "fn",
        "--runtime",
        "python2.7",
        "--handler",
        "app.handler",
    )
    assert result.exit_code == 1
    assert (
        "error: InvalidParameterValueException: Runtime python2.7 is not supported" in result.stderr
    )
    assert "Traceback" not in result.output


def test_deploy_argument_errors(app: typer.Typer, fake: FakeLambda, tmp_path: Path) -> None:
    folder = str(function_dir(tmp_path))
    bad_env = run(
        app,
        "deploy",
        folder,
        "--name",
        "f",
        "--runtime",
        "python3.12",
        "--handler",
        "a.b",
        "--env",
        "NOEQUALS",
    )
    assert bad_env.exit_code == 2 and "KEY=VALUE" in bad_env.output
    missing = run(app, "deploy", folder, "--name", "f", "--handler", "a.b")
    assert missing.exit_code == 2
    not_a_dir = run(
        app,
        "deploy",
        str(tmp_path / "nope"),
        "--name",
        "f",
        "--runtime",
        "python3.12",
        "--handler",
        "a.b",
    )
    assert not_a_dir.exit_code == 2
    assert fake.calls == []


def test_unreachable_server(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    class Down:
        def __getattr__(self, name: str) -> Any:
            def call(**kwargs: Any) -> None:
                raise EndpointConnectionError(endpoint_url="http://127.0.0.1:8790")

            return call

    monkeypatch.setattr(Connection, "client", lambda self, service: Down())
    result = run(app, "invoke", "fn")
    assert result.exit_code == 1
    assert "cannot reach lamina at http://127.0.0.1:8790" in result.stderr


def test_invoke_prints_pretty_json_and_the_log_tail(app: typer.Typer, fake: FakeLambda) -> None:
    fake.invoke_response = {
        "StatusCode": 200,
        "Payload": b'{"ok": true, "n": [1]}',
        "LogResult": base64.b64encode(b"START RequestId: r\nhello\n").decode(),
    }
    result = run(app, "invoke", "fn", "--payload", '{"a": 1}', "--qualifier", "live", "--log")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ok": True, "n": [1]}
    assert result.stdout.startswith('{\n  "ok": true')
    assert "hello" in result.stderr
    request = fake.calls[0][1]
    assert request["Payload"] == b'{"a": 1}'
    assert (request["Qualifier"], request["LogType"]) == ("live", "Tail")


def test_invoke_function_error_exits_1(app: typer.Typer, fake: FakeLambda, tmp_path: Path) -> None:
    fake.invoke_response = {
        "FunctionError": "Unhandled",
        "Payload": b'{"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []}',
    }
    event = tmp_path / "event.json"
    event.write_text('{"from": "file"}')
    result = run(app, "invoke", "fn", "--payload", f"@{event}")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["errorMessage"] == "boom"
    assert fake.calls[0][1]["Payload"] == b'{"from": "file"}'
    assert "LogType" not in fake.calls[0][1]


def test_invoke_prints_non_json_payload_as_text(app: typer.Typer, fake: FakeLambda) -> None:
    fake.invoke_response = {"Payload": b"plain text"}
    result = run(app, "invoke", "fn")
    assert result.exit_code == 0 and result.stdout == "plain text\n"
    assert fake.calls[0][1]["Payload"] == b"{}"


def test_ls_table(app: typer.Typer, fake: FakeLambda) -> None:
    fake.exists = True
    fake.functions = [
        {
            "FunctionName": "b",
            "Runtime": "python3.12",
            "MemorySize": 128,
            "Timeout": 3,
            "State": "Active",
            "LastModified": "2026-11-27T04:00:00.000+0000",
        },
        {
            "FunctionName": "a",
            "Runtime": "python3.11",
            "MemorySize": 512,
            "Timeout": 30,
            "LastModified": "2026-11-27T05:00:00.000+0000",
        },
    ]
    result = CliRunner().invoke(app, ["ls"], env={**ENV, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("Name" in line and "Last modified" in line for line in lines)
    row_a = next(line for line in lines if " a " in line)
    assert "python3.11" in row_a and "512" in row_a and "Active" in row_a
    assert result.stdout.index(" a ") < result.stdout.index(" b ")


def test_ls_empty(app: typer.Typer, fake: FakeLambda) -> None:
    assert run(app, "ls").stdout.strip() == "No functions."


def test_runtimes_from_health(monkeypatch: pytest.MonkeyPatch, app: typer.Typer) -> None:
    def health(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/health"
        return httpx.Response(200, json={"status": "ok", "runtimes": {"python3.12": "/usr/bin/p"}})

    transport = httpx.MockTransport(health)
    assert runtimes.fetch_runtimes("http://x", transport) == {"python3.12": "/usr/bin/p"}
    real = runtimes.fetch_runtimes
    monkeypatch.setattr(runtimes, "fetch_runtimes", lambda endpoint: real(endpoint, transport))
    result = CliRunner().invoke(app, ["runtimes"], env={"COLUMNS": "120"})
    assert result.exit_code == 0 and "python3.12" in result.stdout and "/usr/bin/p" in result.stdout


def test_runtimes_unreachable(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["runtimes"], env={"LAMINA_ENDPOINT": "http://127.0.0.1:9"})
    assert result.exit_code == 1 and "cannot reach lamina" in result.stderr


def test_parse_since() -> None:
    now = 1_000_000.0
    assert parse_since("10m", now) == (now - 600) * 1000
    assert parse_since("2h", now) == (now - 7200) * 1000
    assert parse_since("1970-01-02T00:00:00", now) == 86_400_000
    with pytest.raises(typer.BadParameter):
        parse_since("yesterday", now)


class FakeLogs:
    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        if not self.pages:
            raise not_found("FilterLogEvents", "The specified log group does not exist.")
        return {"events": self.pages.pop(0)}


def event(ts: int, eid: str, stream: str = "2026/11/27/[$LATEST]ab", msg: str = "m") -> Any:
    return {"timestamp": ts, "eventId": eid, "logStreamName": stream, "message": msg}


def test_tail_skips_events_already_printed_and_filters_versions() -> None:
    client = FakeLogs(
        [
            [event(1, "a"), event(2, "b", stream="2026/11/27/[2]cd")],
            [event(2, "b", stream="2026/11/27/[2]cd"), event(2, "c"), event(3, "d")],
        ]
    )
    tail = LogTail(client, "/aws/lambda/fn", 0, None)
    assert [e["eventId"] for e in tail.poll()] == ["a", "b"]
    assert [e["eventId"] for e in tail.poll()] == ["c", "d"]
    assert client.requests[1]["startTime"] == 2
    assert tail.poll() == []  # the group is gone (or not there yet): no events, no error
    only_v2 = LogTail(
        FakeLogs([[event(1, "a"), event(2, "b", stream="x/[2]y")]]), "g", 0, frozenset({"2"})
    )
    assert [e["eventId"] for e in only_v2.poll()] == ["b"]


def test_follow_polls_until_interrupted(capsys: pytest.CaptureFixture[str]) -> None:
    tail = LogTail(
        FakeLogs([[event(0, "a", msg="START\n")], [event(5, "b", msg="END\n")]]), "g", 0, None
    )
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        follow_events(tail, follow=True, sleep=sleep)
    assert capsys.readouterr().out.splitlines() == [
        "1970-01-01T00:00:00.000Z START",
        "1970-01-01T00:00:00.005Z END",
    ]
    assert sleeps == [1.0, 1.0]
    assert format_event(event(1500, "x", msg="hi\n")) == "1970-01-01T00:00:01.500Z hi"


def test_qualifier_versions() -> None:
    client = FakeLambda()
    assert qualifier_versions(client, "fn", None) is None
    assert qualifier_versions(client, "fn", "$LATEST") == {"$LATEST"}
    assert qualifier_versions(client, "fn", "7") == {"7"}
    assert qualifier_versions(client, "fn", "live") == {"2", "3"}


def test_logs_command_reads_the_function_group(
    app: typer.Typer, fake: FakeLambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.exists = True
    logs_client = FakeLogs([[event(1, "a", msg="hello\n")]])
    monkeypatch.setattr(
        Connection, "client", lambda self, service: fake if service == "lambda" else logs_client
    )
    result = run(app, "logs", "fn", "--since", "1h", "--filter", "hello -bye")
    assert result.exit_code == 0, result.output
    assert result.stdout == "1970-01-01T00:00:00.001Z hello\n"
    assert logs_client.requests[0]["logGroupName"] == "/aws/lambda/fn"
    assert logs_client.requests[0]["filterPattern"] == "hello -bye"


def test_logs_of_a_missing_function(app: typer.Typer, fake: FakeLambda) -> None:
    result = run(app, "logs", "nope")
    assert result.exit_code == 1
    assert "error: ResourceNotFoundException: Function not found" in result.stderr


def test_runtime_interpreter_is_the_servers_when_local(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from lamina.cli import deploy as deploy_module

    served = {"python3.99": sys.executable, "python3.98": "/remote/only/python"}
    monkeypatch.setattr(deploy_module, "fetch_runtimes", lambda endpoint: served)
    assert deploy_module.runtime_interpreter("http://x", "python3.99") == sys.executable
    assert deploy_module.runtime_interpreter("http://x", "python3.98") is None
    # The CLI's own Python, or a custom runtime, needs no lookup at all.
    mine = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert deploy_module.runtime_interpreter("http://x", mine) is None
    assert deploy_module.runtime_interpreter("http://x", "provided.al2023") is None
