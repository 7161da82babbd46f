"""json protocol: X-Amz-Target dispatch, JSON bodies, `__type` errors, checked with botocore."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from botocore.model import ServiceModel

from lamina.errors import LaminaError, ResourceNotFound, ServiceError, ValidationError
from lamina.protocols.json_protocol import JsonProtocol
from lamina.protocols.testing import read_response, wire_request
from lamina.protocols.wire import HttpRequest

Models = Callable[[str], ServiceModel]
T0 = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_logs_request_and_response(service_model: Models) -> None:
    model = service_model("logs")
    protocol = JsonProtocol(model)
    params = {
        "logGroupName": "/aws/lambda/f",
        "logStreamNames": ["a", "b"],
        "startTime": 1700000000000,
        "filterPattern": "ERROR",
        "limit": 50,
        "interleaved": True,
    }
    request = wire_request(model, "FilterLogEvents", params)
    assert request.headers["x-amz-target"] == "Logs_20140328.FilterLogEvents"
    parsed = protocol.parse_request(request)
    assert (parsed.operation, parsed.params) == ("FilterLogEvents", params)

    output = {
        "events": [{"logStreamName": "a", "timestamp": 1, "message": "hi", "eventId": "1"}],
        "searchedLogStreams": [{"logStreamName": "a", "searchedCompletely": True}],
        "nextToken": "t",
    }
    response = protocol.serialize_response("FilterLogEvents", output, "req")
    assert response.headers["Content-Type"] == "application/x-amz-json-1.1"
    parsed_out = read_response(model, "FilterLogEvents", response)
    assert parsed_out["ResponseMetadata"]["RequestId"] == "req"
    parsed_out.pop("ResponseMetadata")
    assert parsed_out == output


def test_blobs_and_maps_round_trip(service_model: Models) -> None:
    model = service_model("kms")
    protocol = JsonProtocol(model)
    params = {
        "KeyId": "alias/k",
        "Plaintext": b"\x00secret\xff",
        "EncryptionContext": {"fn": "f"},
    }
    parsed = protocol.parse_request(wire_request(model, "Encrypt", params))
    assert parsed.params == params
    output = {
        "CiphertextBlob": b"\x01\x02",
        "KeyId": "arn:k",
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    response = protocol.serialize_response("Encrypt", output, "r")
    got = read_response(model, "Encrypt", response)
    assert got["CiphertextBlob"] == b"\x01\x02"


def test_timestamps_are_epoch_seconds(service_model: Models) -> None:
    model = service_model("secretsmanager")
    protocol = JsonProtocol(model)
    response = protocol.serialize_response(
        "DescribeSecret",
        {"Name": "s", "LastChangedDate": T0, "CreatedDate": T0.replace(microsecond=0)},
        "r",
    )
    body = orjson.loads(response.body)
    assert body["LastChangedDate"] == pytest.approx(T0.timestamp())
    assert isinstance(body["CreatedDate"], int)
    parsed = read_response(model, "DescribeSecret", response)
    assert parsed["LastChangedDate"] == T0


def test_timestamp_input_parses_to_datetime(service_model: Models) -> None:
    model = service_model("events")
    protocol = JsonProtocol(model)
    entry = {"Source": "app", "DetailType": "t", "Detail": "{}", "Time": T0}
    parsed = protocol.parse_request(wire_request(model, "PutEvents", {"Entries": [entry]}))
    assert parsed.params["Entries"][0]["Time"] == T0


def test_errors(service_model: Models) -> None:
    model = service_model("logs")
    protocol = JsonProtocol(model)
    response = protocol.serialize_error(
        ResourceNotFound("The specified log group does not exist."), "req"
    )
    assert response.status == 404
    assert orjson.loads(response.body) == {
        "__type": "ResourceNotFoundException",
        "message": "The specified log group does not exist.",
    }
    assert "x-amzn-query-error" not in response.headers
    parsed = read_response(model, "FilterLogEvents", response)
    assert parsed["Error"] == {
        "Code": "ResourceNotFoundException",
        "Message": "The specified log group does not exist.",
    }
    assert parsed["ResponseMetadata"]["RequestId"] == "req"


def test_query_compatible_services_send_the_legacy_code(service_model: Models) -> None:
    model = service_model("sqs")
    protocol = JsonProtocol(model)
    error = LaminaError("The specified queue does not exist.", code="QueueDoesNotExist", status=400)
    response = protocol.serialize_error(error, "r")
    assert response.headers["x-amzn-query-error"] == "QueueDoesNotExist;Sender"
    parsed = read_response(model, "GetQueueUrl", response)
    assert parsed["Error"]["Code"] == "QueueDoesNotExist"
    internal = protocol.serialize_error(ServiceError("x"), "r")
    assert internal.headers["x-amzn-query-error"] == "ServiceException;Receiver"


def test_unknown_target_empty_body_and_bad_json(service_model: Models) -> None:
    protocol = JsonProtocol(service_model("logs"))
    with pytest.raises(LaminaError) as err:
        protocol.parse_request(HttpRequest("POST", "/", {}, {"x-amz-target": "Nope.Op"}, b"{}"))
    assert (err.value.code, err.value.status) == ("UnknownOperationException", 400)
    target = {"x-amz-target": "Logs_20140328.DescribeLogGroups"}
    assert protocol.parse_request(HttpRequest("POST", "/", {}, target, b"")).params == {}
    with pytest.raises(LaminaError) as err:
        protocol.parse_request(HttpRequest("POST", "/", {}, target, b"{"))
    assert err.value.code == "SerializationException"
    with pytest.raises(LaminaError) as err:
        protocol.parse_request(HttpRequest("POST", "/", {}, target, b'{"limit": "many"}'))
    assert err.value.code == "SerializationException"
    assert "limit" in err.value.message


def test_error_fields_and_headers_are_kept(service_model: Models) -> None:
    protocol = JsonProtocol(service_model("logs"))
    error = ValidationError(
        "bad", fields={"expectedSequenceToken": "x"}, headers={"Retry-After": "1"}
    )
    response = protocol.serialize_error(error, "r")
    assert orjson.loads(response.body)["expectedSequenceToken"] == "x"
    assert response.headers["Retry-After"] == "1"
