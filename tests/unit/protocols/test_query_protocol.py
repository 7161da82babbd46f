"""query protocol: flattened form fields in, XML out, checked with botocore."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest
from botocore.model import ServiceModel

from lamina.errors import LaminaError, ResourceNotFound, ServiceError
from lamina.protocols.query import QueryProtocol
from lamina.protocols.testing import read_response, wire_request
from lamina.protocols.wire import HttpRequest

Models = Callable[[str], ServiceModel]
T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_every_input_shape_parses(gadgets: ServiceModel) -> None:
    protocol = QueryProtocol(gadgets)
    params = {
        "Title": "a b+c&d=e ✓",
        "Count": 3,
        "On": False,
        "Ratio": 0.5,
        "At": T0,
        "Data": b"\x00\xff",
        "Attributes": {"k1": "v1", "k 2": "v=2"},
        "Names": ["x", "y"],
        "Empty": [],
        "Items": [{"Id": 1, "Sub": {"Id": 2, "Sub": {"Id": 3}}}, {"Id": 4}],
    }
    parsed = protocol.parse_request(wire_request(gadgets, "PutGadget", params))
    assert (parsed.operation, parsed.params) == ("PutGadget", params)


def test_fields_may_come_in_the_url_query(gadgets: ServiceModel) -> None:
    protocol = QueryProtocol(gadgets)
    query = {"Action": ["PutGadget"], "Version": ["2021-02-03"], "Count": ["7"]}
    parsed = protocol.parse_request(HttpRequest("GET", "/", query, {}, b""))
    assert parsed.params == {"Count": 7}


def test_every_output_shape_round_trips(gadgets: ServiceModel) -> None:
    protocol = QueryProtocol(gadgets)
    output = {
        "Title": "<tag> & \"quotes\" 'apos' ✓",
        "Count": 3,
        "On": True,
        "Ratio": 1.25,
        "At": T0,
        "Data": b"\x00\xff",
        "Attributes": {"k1": "v1"},
        "Flat": {"a": "1", "b": "2"},
        "Names": ["x", "y"],
        "FlatNames": ["n1", "n2"],
        "Items": [{"Id": 1, "Sub": {"Id": 2}}],
    }
    response = protocol.serialize_response("PutGadget", output, "req-1")
    root = ElementTree.fromstring(response.body)
    assert root.tag == "{https://gadgets.example.com/doc/2021-02-03/}PutGadgetResponse"
    parsed = read_response(gadgets, "PutGadget", response)
    assert parsed.pop("ResponseMetadata")["RequestId"] == "req-1"
    assert parsed == output


def test_operation_without_output(gadgets: ServiceModel) -> None:
    protocol = QueryProtocol(gadgets)
    response = protocol.serialize_response("Ping", {}, "r")
    assert b"<PingResponse" in response.body
    assert read_response(gadgets, "Ping", response)["ResponseMetadata"]["RequestId"] == "r"


def test_iam_and_sts(service_model: Models) -> None:
    iam = service_model("iam")
    protocol = QueryProtocol(iam)
    params = {
        "RoleName": "r",
        "AssumeRolePolicyDocument": '{"Version": "2012-10-17"}',
        "Tags": [{"Key": "a", "Value": "1"}],
    }
    assert protocol.parse_request(wire_request(iam, "CreateRole", params)).params == params
    role = {
        "Path": "/",
        "RoleName": "r",
        "RoleId": "AROA1",
        "Arn": "arn:aws:iam::000000000000:role/r",
        "CreateDate": T0,
    }
    response = protocol.serialize_response(
        "ListRoles", {"Roles": [role], "IsTruncated": False}, "q"
    )
    parsed = read_response(iam, "ListRoles", response)
    assert parsed["Roles"] == [role] and parsed["IsTruncated"] is False

    sts = service_model("sts")
    credentials = {
        "AccessKeyId": "ASIA1",
        "SecretAccessKey": "s",
        "SessionToken": "t",
        "Expiration": T0,
    }
    response = QueryProtocol(sts).serialize_response(
        "AssumeRole", {"Credentials": credentials, "PackedPolicySize": 6}, "r"
    )
    assert read_response(sts, "AssumeRole", response)["Credentials"] == credentials


def test_errors(service_model: Models) -> None:
    iam = service_model("iam")
    protocol = QueryProtocol(iam)
    error = ResourceNotFound("The role with name r cannot be found.", code="NoSuchEntity")
    response = protocol.serialize_error(error, "req")
    assert response.status == 404
    parsed = read_response(iam, "GetRole", response)
    assert parsed["Error"] == {
        "Type": "Sender",
        "Code": "NoSuchEntity",
        "Message": "The role with name r cannot be found.",
    }
    assert parsed["ResponseMetadata"]["RequestId"] == "req"
    internal = read_response(iam, "GetRole", protocol.serialize_error(ServiceError("x"), "r"))
    assert internal["Error"]["Type"] == "Receiver"


def test_unknown_action_and_bad_values(gadgets: ServiceModel) -> None:
    protocol = QueryProtocol(gadgets)
    with pytest.raises(LaminaError) as err:
        protocol.parse_request(HttpRequest("POST", "/", {}, {}, b"Action=Nope&Version=1"))
    assert (err.value.code, err.value.status) == ("InvalidAction", 400)
    with pytest.raises(LaminaError) as err:
        protocol.parse_request(HttpRequest("POST", "/", {}, {}, b"Action=PutGadget&Count=x"))
    assert (err.value.code, err.value.status) == ("ValidationException", 400)
