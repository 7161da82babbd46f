"""Bad input gets a clear 4xx in AWS's error shape, and nothing half-written stays."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.support import ROLE, LaminaServer, create_function, make_zip, unique_name

OK = "def handler(event, context):\n    return 1\n"


def _error(call: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    response = err.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def _create(client: Any, **overrides: Any) -> tuple[int, str, str]:
    params: dict[str, Any] = {
        "FunctionName": unique_name(), "Runtime": "python3.11", "Role": ROLE,
        "Handler": "app.handler", "Code": {"ZipFile": make_zip({"app.py": OK})},
    }  # fmt: skip
    params.update(overrides)
    return _error(client.create_function, **params)


def _zip_with(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name), "x")
    return buffer.getvalue()


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        chunk = b"\0" * (1 << 20)
        for i in range(3):  # 3 x 100 MB of zeros: ~300 KB zipped, 300 MB unzipped
            with archive.open(f"zeros{i}.bin", "w", force_zip64=True) as out:
                for _ in range(100):
                    out.write(chunk)
    return buffer.getvalue()


def test_unknown_function_and_duplicate(lambda_client: Any) -> None:
    status, code, message = _error(lambda_client.get_function, FunctionName="does-not-exist")
    assert (status, code) == (404, "ResourceNotFoundException")
    assert "does-not-exist" in message
    status, code, _ = _error(lambda_client.invoke, FunctionName="does-not-exist")
    assert (status, code) == (404, "ResourceNotFoundException")
    name = create_function(lambda_client, OK)
    status, code, message = _create(lambda_client, FunctionName=name)
    assert (status, code) == (409, "ResourceConflictException")
    assert name in message


@pytest.mark.parametrize(
    ("zip_bytes", "words"),
    [
        (b"this is not a zip", "not a valid zip"),
        (_zip_with("../escape.py"), ".."),
        (_zip_with("/etc/evil.py"), "absolute"),
        (_zip_with("a/../../evil.py"), ".."),
    ],
)
def test_bad_packages_are_refused(lambda_client: Any, zip_bytes: bytes, words: str) -> None:
    status, code, message = _create(lambda_client, Code={"ZipFile": zip_bytes})
    assert (status, code) == (400, "InvalidParameterValueException")
    assert words in message


def test_zip_bomb_is_refused(lambda_client: Any) -> None:
    status, code, message = _create(lambda_client, Code={"ZipFile": _zip_bomb()})
    assert (status, code) == (400, "InvalidParameterValueException")
    assert "262144000" in message


@pytest.mark.parametrize(
    ("overrides", "expected_code", "words"),
    [
        ({"FunctionName": "bad name!"}, "ValidationException", "functionName"),
        ({"FunctionName": "x" * 65}, "ValidationException", "64"),
        ({"Runtime": "python2.7"}, "InvalidParameterValueException", "Available runtimes"),
        ({"Runtime": "cobol"}, "InvalidParameterValueException", "Available runtimes"),
        ({"Handler": "nodot"}, "InvalidParameterValueException", "module.function"),
        ({"MemorySize": 64}, "ValidationException", "memorySize"),
        ({"MemorySize": 20000}, "ValidationException", "memorySize"),
        ({"Timeout": 901}, "ValidationException", "timeout"),
        ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "InvalidParameterValueException", "AWS_REGION"),
        ({"Environment": {"Variables": {"BIG": "x" * 5000}}}, "InvalidParameterValueException", "4KB"),
    ],
)
def test_bad_configuration_is_refused(
    lamina_server: LaminaServer, overrides: dict[str, Any], expected_code: str, words: str
) -> None:
    # botocore validates some constraints itself; turn that off to test lamina's checks
    client = lamina_server.client(parameter_validation=False)
    status, code, message = _create(client, **overrides)
    assert (status, code) == (400, expected_code)
    assert words in message


def test_refused_create_leaves_nothing_behind(lambda_client: Any) -> None:
    name = unique_name()
    _create(lambda_client, FunctionName=name, Code={"ZipFile": _zip_with("../x")})
    status, code, _ = _error(lambda_client.get_function, FunctionName=name)
    assert (status, code) == (404, "ResourceNotFoundException")
    # the same name can be created afterwards
    create_function(lambda_client, OK, name=name)


def test_invoke_payload_must_be_json_and_within_limits(lambda_client: Any) -> None:
    name = create_function(lambda_client, OK)
    status, code, _ = _error(lambda_client.invoke, FunctionName=name, Payload=b"{not json")
    assert (status, code) == (400, "InvalidRequestContentException")
    big = b'"' + b"x" * (6 * 1024 * 1024) + b'"'
    status, code, _ = _error(lambda_client.invoke, FunctionName=name, Payload=big)
    assert (status, code) == (413, "RequestTooLargeException")
    medium = b'"' + b"x" * (300 * 1024) + b'"'
    status, code, _ = _error(lambda_client.invoke, FunctionName=name, Payload=medium, InvocationType="Event")
    assert (status, code) == (413, "RequestTooLargeException")
    # the same medium payload is fine synchronously
    assert lambda_client.invoke(FunctionName=name, Payload=medium)["StatusCode"] == 200


def test_bad_qualifier_and_invocation_type(lambda_client: Any) -> None:
    name = create_function(lambda_client, OK)
    status, code, _ = _error(lambda_client.invoke, FunctionName=name, Qualifier="99")
    assert (status, code) == (404, "ResourceNotFoundException")
    status, code, _ = _error(lambda_client.create_alias, FunctionName=name, Name="a", FunctionVersion="42")
    assert (status, code) == (404, "ResourceNotFoundException")
