"""Lambda's rest-json wire shapes: requests as botocore writes them, responses as
botocore reads them, and golden shapes from the Lambda API reference."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from botocore.model import ServiceModel

from lamina.errors import (
    InvalidParameterValue,
    LaminaError,
    ResourceConflict,
    ResourceNotFound,
    TooManyRequests,
)
from lamina.protocols.rest_json import RestJsonProtocol
from lamina.protocols.testing import read_response, wire_request

ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-function"
CONFIG: dict[str, Any] = {
    "FunctionName": "my-function",
    "FunctionArn": ARN,
    "Runtime": "python3.12",
    "Role": "arn:aws:iam::123456789012:role/lambda-role",
    "Handler": "app.handler",
    "CodeSize": 312,
    "Description": "",
    "Timeout": 3,
    "MemorySize": 128,
    "LastModified": "2024-03-01T12:00:00.000+0000",
    "CodeSha256": "YFgDgEKG3ugvF1+pX64gV6tu9qNuIYNUdgJm8nCxsm4=",
    "Version": "$LATEST",
    "Environment": {"Variables": {"STAGE": "prod"}},
    "TracingConfig": {"Mode": "PassThrough"},
    "State": "Active",
    "LastUpdateStatus": "Successful",
    "PackageType": "Zip",
    "Architectures": ["x86_64"],
    "EphemeralStorage": {"Size": 512},
    "Layers": [{"Arn": "arn:aws:lambda:us-east-1:123456789012:layer:l:1", "CodeSize": 10}],
}


@pytest.fixture(scope="module")
def model(service_model: Callable[[str], ServiceModel]) -> ServiceModel:
    return service_model("lambda")


@pytest.fixture(scope="module")
def protocol(model: ServiceModel) -> RestJsonProtocol:
    return RestJsonProtocol(model)


def roundtrip(model: ServiceModel, protocol: RestJsonProtocol, op: str, out: dict[str, Any]) -> Any:
    parsed = read_response(model, op, protocol.serialize_response(op, out, "req-1"))
    assert parsed.pop("ResponseMetadata")["RequestId"] == "req-1"
    return parsed


# -- requests: what botocore sends, what the service gets ------------------------------------


def test_invoke_request(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    params = {
        "FunctionName": ARN,
        "InvocationType": "Event",
        "LogType": "Tail",
        "ClientContext": base64.b64encode(b'{"custom": {}}').decode(),
        "Payload": b'{"key": "value"}',
        "Qualifier": "prod",
    }
    request = wire_request(model, "Invoke", params)
    # Golden: POST /2015-03-31/functions/FunctionName/invocations?Qualifier=Qualifier
    assert request.method == "POST"
    assert request.path == (
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction"
        "%3Amy-function/invocations"
    )
    assert request.query == {"Qualifier": ["prod"]}
    assert request.headers["x-amz-invocation-type"] == "Event"
    parsed = protocol.parse_request(request)
    assert (parsed.operation, parsed.params) == ("Invoke", params)


def test_invoke_without_payload_gets_empty_bytes(
    model: ServiceModel, protocol: RestJsonProtocol
) -> None:
    parsed = protocol.parse_request(wire_request(model, "Invoke", {"FunctionName": "f"}))
    assert parsed.params == {"FunctionName": "f", "Payload": b""}


def test_create_function_request_with_zip_blob(
    model: ServiceModel, protocol: RestJsonProtocol
) -> None:
    zip_bytes = b"PK\x03\x04" + bytes(range(256))
    params = {
        "FunctionName": "my-function",
        "Runtime": "python3.12",
        "Role": CONFIG["Role"],
        "Handler": "app.handler",
        "Code": {"ZipFile": zip_bytes},
        "Timeout": 30,
        "MemorySize": 256,
        "Publish": True,
        "Environment": {"Variables": {"A": "1"}},
        "Tags": {"team": "core"},
        "Architectures": ["arm64"],
    }
    request = wire_request(model, "CreateFunction", params)
    body = orjson.loads(request.body)
    assert body["Code"]["ZipFile"] == base64.b64encode(zip_bytes).decode()  # golden: base64
    parsed = protocol.parse_request(request)
    assert (parsed.operation, parsed.params) == ("CreateFunction", params)


def test_list_functions_request(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    request = wire_request(model, "ListFunctions", {"Marker": "m/1+2", "MaxItems": 50})
    assert (request.method, request.path) == ("GET", "/2015-03-31/functions")
    parsed = protocol.parse_request(request)
    assert (parsed.operation, parsed.params) == (
        "ListFunctions",
        {"Marker": "m/1+2", "MaxItems": 50},
    )


def test_update_alias_request(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    params = {
        "FunctionName": "my-function",
        "Name": "live",
        "FunctionVersion": "2",
        "RoutingConfig": {"AdditionalVersionWeights": {"3": 0.25}},
        "RevisionId": "r-1",
    }
    request = wire_request(model, "UpdateAlias", params)
    assert (request.method, request.path) == (
        "PUT",
        "/2015-03-31/functions/my-function/aliases/live",
    )
    parsed = protocol.parse_request(request)
    assert (parsed.operation, parsed.params) == ("UpdateAlias", params)


def test_put_function_concurrency_request(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    params = {"FunctionName": "my-function", "ReservedConcurrentExecutions": 5}
    request = wire_request(model, "PutFunctionConcurrency", params)
    assert request.path == "/2017-10-31/functions/my-function/concurrency"
    parsed = protocol.parse_request(request)
    assert (parsed.operation, parsed.params) == ("PutFunctionConcurrency", params)


def test_get_function_configuration_with_qualifier(
    model: ServiceModel, protocol: RestJsonProtocol
) -> None:
    params = {"FunctionName": "my-function", "Qualifier": "$LATEST"}
    request = wire_request(model, "GetFunctionConfiguration", params)
    parsed = protocol.parse_request(request)
    assert (parsed.operation, parsed.params) == ("GetFunctionConfiguration", params)


def test_operations_sharing_a_path(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:layer:l:1"
    by_arn = protocol.parse_request(wire_request(model, "GetLayerVersionByArn", {"Arn": arn}))
    assert (by_arn.operation, by_arn.params) == ("GetLayerVersionByArn", {"Arn": arn})
    assert protocol.parse_request(wire_request(model, "ListLayers", {})).operation == "ListLayers"
    listed = protocol.parse_request(
        wire_request(model, "ListProvisionedConcurrencyConfigs", {"FunctionName": "f"})
    )
    assert listed.operation == "ListProvisionedConcurrencyConfigs"
    single = protocol.parse_request(
        wire_request(
            model, "GetProvisionedConcurrencyConfig", {"FunctionName": "f", "Qualifier": "1"}
        )
    )
    assert single.operation == "GetProvisionedConcurrencyConfig"


# -- responses: what the service returns, what boto3 sees ---------------------------------------


def test_create_function_response(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    response = protocol.serialize_response("CreateFunction", CONFIG, "req-1")
    assert response.status == 201  # golden: CreateFunction answers 201
    assert roundtrip(model, protocol, "CreateFunction", CONFIG) == CONFIG


def test_invoke_response(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    output = {
        "StatusCode": 200,
        "FunctionError": "Unhandled",
        "LogResult": base64.b64encode(b"START RequestId: 1\nEND\n").decode(),
        "ExecutedVersion": "$LATEST",
        "Payload": b'{"errorMessage": "boom", "errorType": "Exception"}',
    }
    response = protocol.serialize_response("Invoke", output, "req-1")
    # Golden: the payload is the raw body; the rest are headers.
    assert response.body == output["Payload"]
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    assert response.headers["X-Amz-Executed-Version"] == "$LATEST"
    parsed = roundtrip(model, protocol, "Invoke", output)
    assert parsed["Payload"] == output["Payload"].decode()  # the client wraps it in a stream
    assert {
        k: parsed[k] for k in ("StatusCode", "FunctionError", "LogResult", "ExecutedVersion")
    } == {k: output[k] for k in ("StatusCode", "FunctionError", "LogResult", "ExecutedVersion")}


def test_async_invoke_status_comes_from_the_output(
    model: ServiceModel, protocol: RestJsonProtocol
) -> None:
    response = protocol.serialize_response("Invoke", {"StatusCode": 202, "Payload": b""}, "r")
    assert (response.status, response.body) == (202, b"")
    assert read_response(model, "Invoke", response)["StatusCode"] == 202


def test_list_functions_response(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    output = {"Functions": [CONFIG, {**CONFIG, "FunctionName": "other"}], "NextMarker": "abc"}
    assert roundtrip(model, protocol, "ListFunctions", output) == output


def test_get_function_response(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    output = {
        "Configuration": CONFIG,
        "Code": {"RepositoryType": "S3", "Location": "http://127.0.0.1:9000/code?sig=1&x=2"},
        "Tags": {"team": "core"},
        "Concurrency": {"ReservedConcurrentExecutions": 5},
    }
    assert roundtrip(model, protocol, "GetFunction", output) == output


def test_delete_responses_have_no_body(model: ServiceModel, protocol: RestJsonProtocol) -> None:
    response = protocol.serialize_response("DeleteAlias", {}, "r")
    assert (response.status, response.body) == (204, b"")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "body_key"),
    [
        (ResourceNotFound(f"Function not found: {ARN}"), 404, "Message"),
        (ResourceConflict("Function already exist: my-function"), 409, "message"),
        (
            InvalidParameterValue("Unzipped size must be smaller than 262144000 bytes"),
            400,
            "message",
        ),
        (
            TooManyRequests(
                "Rate Exceeded.",
                fields={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
                headers={"Retry-After": "1"},
            ),
            429,
            "message",
        ),
    ],
)
def test_errors_as_lambda_sends_them(
    model: ServiceModel,
    protocol: RestJsonProtocol,
    error: LaminaError,
    status: int,
    body_key: str,
) -> None:
    response = protocol.serialize_error(error, "req-1")
    # Golden (Lambda API reference): X-Amzn-ErrorType header, {"Type": "User", ...} body.
    assert response.status == status
    assert response.headers["x-amzn-ErrorType"] == error.code
    assert response.headers["x-amzn-RequestId"] == "req-1"
    body = orjson.loads(response.body)
    assert body["Type"] == "User" and body[body_key] == error.message
    parsed = read_response(model, "Invoke", response)
    assert parsed["Error"] == {"Code": error.code, "Message": error.message}
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == status
    for key, value in error.fields.items():
        assert body[key] == value
    for key, value in error.headers.items():
        assert response.headers[key] == value
