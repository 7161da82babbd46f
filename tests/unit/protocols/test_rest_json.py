"""rest-json: every input location and output binding, checked against botocore."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from botocore.model import ServiceModel
from botocore.utils import percent_encode

from lamina.errors import LaminaError, ResourceNotFound, ServiceError
from lamina.protocols.rest_json import RestJsonProtocol
from lamina.protocols.rest_routes import RestRouteTable
from lamina.protocols.testing import read_response, wire_request
from lamina.protocols.wire import HttpRequest

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
T1 = datetime(2024, 5, 6, 7, 8, 9, 250000, tzinfo=UTC)


@pytest.fixture(scope="module")
def protocol(widgets: ServiceModel) -> RestJsonProtocol:
    return RestJsonProtocol(widgets)


def test_every_location_parses_from_a_botocore_request(
    widgets: ServiceModel, protocol: RestJsonProtocol
) -> None:
    params = {
        "Name": "arn:aws:x:y/with space/✓",
        "Tags": ["a", "b c", "a"],
        "Limit": 10,
        "Force": True,
        "Since": T0,
        "Extra": {"free": "form", "other": "x+y"},
        "Trace": "trace-1",
        "Count": 12345678901,
        "Flags": ["one", "two, with comma", 'quote"d'],
        "When": T0,
        "Meta": {"owner": "me", "team": "core"},
        "Doc": {"nested": [1, 2, {"k": None}]},
        "Color": "red",
        "Size": 1.5,
        "Created": T1,
        "Data": b"\x00\xffbinary",
        "Parts": [{"Id": 1, "Seen": T0, "Child": {"Id": 2, "Raw": b"r"}}],
        "ByName": {"p": {"Id": 3}},
        "Renamed": "yes",
    }
    parsed = protocol.parse_request(wire_request(widgets, "PutWidget", params))
    assert parsed.operation == "PutWidget"
    assert parsed.params == params


def test_empty_body_and_absent_members(widgets: ServiceModel, protocol: RestJsonProtocol) -> None:
    parsed = protocol.parse_request(wire_request(widgets, "PutWidget", {"Name": "w"}))
    assert parsed.params == {"Name": "w"}


def test_structure_payload_and_greedy_label(
    widgets: ServiceModel, protocol: RestJsonProtocol
) -> None:
    request = wire_request(widgets, "SetConfig", {"Name": "w", "Config": {"Level": 3}})
    assert protocol.parse_request(request).params == {"Name": "w", "Config": {"Level": 3}}
    request = wire_request(widgets, "GetFile", {"Path": "a/b c/%d.txt"})
    parsed = protocol.parse_request(request)
    assert parsed.operation == "GetFile"
    assert parsed.params == {"Path": "a/b c/%d.txt"}


def test_query_literal_picks_the_operation(
    widgets: ServiceModel, protocol: RestJsonProtocol
) -> None:
    assert protocol.parse_request(wire_request(widgets, "ListWidgets", {})).operation == (
        "ListWidgets"
    )
    found = protocol.parse_request(
        wire_request(widgets, "FindWidget", {"Q": "x", "Extra": {"a": "b"}})
    )
    # `find` is the route's literal, not a member of the query map.
    assert found == type(found)("FindWidget", {"Q": "x", "Extra": {"a": "b"}})


def test_unknown_route_is_404(protocol: RestJsonProtocol) -> None:
    with pytest.raises(LaminaError) as err:
        protocol.parse_request(HttpRequest("GET", "/nowhere", {}, {}, b""))
    assert (err.value.code, err.value.status) == ("UnknownOperationException", 404)
    with pytest.raises(LaminaError):
        protocol.parse_request(HttpRequest("PATCH", "/2020-01-01/widgets/w", {}, {}, b""))


@pytest.mark.parametrize(
    ("query", "headers", "body", "code", "where"),
    [
        ({"limit": ["ten"]}, {}, b"", "ValidationException", "Limit"),
        ({"force": ["maybe"]}, {}, b"", "ValidationException", "Force"),
        ({}, {"x-count": "1.5"}, b"", "ValidationException", "Count"),
        ({}, {}, b"{not json", "SerializationException", ""),
        ({}, {}, b'{"Color": 5}', "SerializationException", "'Color'"),
        (
            {},
            {},
            b'{"Parts": [{"Child": {"Id": "x"}}]}',
            "SerializationException",
            "Parts.Child.Id",
        ),
        ({}, {}, b'{"Data": "***"}', "SerializationException", "'Data'"),
        ({}, {}, b'{"Created": true}', "SerializationException", "'Created'"),
        ({}, {}, b"[1]", "SerializationException", ""),
    ],
)
def test_bad_values_are_400(
    protocol: RestJsonProtocol,
    query: dict[str, list[str]],
    headers: dict[str, str],
    body: bytes,
    code: str,
    where: str,
) -> None:
    request = HttpRequest("PUT", "/2020-01-01/widgets/w", query, headers, body)
    with pytest.raises(LaminaError) as err:
        protocol.parse_request(request)
    assert (err.value.code, err.value.status) == (code, 400)
    assert where in err.value.message


def test_unknown_body_members_are_ignored(protocol: RestJsonProtocol) -> None:
    request = HttpRequest("PUT", "/2020-01-01/widgets/w", {}, {}, b'{"Future": 1, "Color": null}')
    assert protocol.parse_request(request).params == {"Name": "w"}


def test_output_round_trips_through_botocore(
    widgets: ServiceModel, protocol: RestJsonProtocol
) -> None:
    output = {
        "Status": 202,
        "ETag": '"abc"',
        "Modified": T0,
        "Ids": [1, 2, 3],
        # Items with commas are quoted (RFC 7230) on the way out, but botocore's parser
        # splits naively, so the round trip uses plain items; quoting is checked below.
        "Flags": ["a", "b"],
        "Meta": {"owner": "me"},
        "Doc": {"k": [1, "two"]},
        "Color": "blue",
        "Size": 2.25,
        "Created": T1,
        "Data": b"\x01\x02",
        "Parts": [{"Id": 1, "Seen": T1, "Child": {"Id": 2, "Raw": b"\xff"}}],
        "ByName": {"x": {"Id": 9}},
        "Renamed": "r",
    }
    response = protocol.serialize_response("PutWidget", output, "req-1")
    assert response.status == 202
    assert response.headers["x-amzn-RequestId"] == "req-1"
    body = orjson.loads(response.body)
    assert body["Created"] == pytest.approx(T1.timestamp())
    assert body["Parts"][0]["Seen"] == "2024-05-06T07:08:09.250Z"  # member's iso8601 trait
    assert body["Data"] == base64.b64encode(b"\x01\x02").decode()
    assert "renamed_on_wire" in body and "Status" not in body and "ETag" not in body
    parsed = read_response(widgets, "PutWidget", response)
    parsed.pop("ResponseMetadata")
    assert parsed == output


def test_header_list_items_with_commas_are_quoted(protocol: RestJsonProtocol) -> None:
    response = protocol.serialize_response("PutWidget", {"Flags": ["a", 'b,"c"']}, "r")
    assert response.headers["X-Flags"] == 'a,"b,\\"c\\""'


def test_default_status_and_empty_output(widgets: ServiceModel, protocol: RestJsonProtocol) -> None:
    response = protocol.serialize_response("PutWidget", {}, "r")
    assert (response.status, response.body) == (201, b"{}")
    response = protocol.serialize_response("DeleteWidget", {}, "r")
    assert (response.status, response.body) == (204, b"")
    assert read_response(widgets, "DeleteWidget", response)["ResponseMetadata"]["RequestId"] == "r"


def test_blob_and_structure_payload_outputs(
    widgets: ServiceModel, protocol: RestJsonProtocol
) -> None:
    response = protocol.serialize_response("GetWidgetData", {"Data": b"raw", "Kind": "k"}, "r")
    assert response.body == b"raw"
    parsed = read_response(widgets, "GetWidgetData", response)
    assert (parsed["Data"], parsed["Kind"]) == ("raw", "k")
    response = protocol.serialize_response("SetConfig", {"Config": {"Level": 4}}, "r")
    assert orjson.loads(response.body) == {"Level": 4}
    assert read_response(widgets, "SetConfig", response)["Config"] == {"Level": 4}


def test_errors_render_as_botocore_reads_them(
    widgets: ServiceModel, protocol: RestJsonProtocol
) -> None:
    error = ResourceNotFound("Widget w not found", code="WidgetNotFound", fields={"Name": "w"})
    response = protocol.serialize_error(error, "req-9")
    assert response.status == 404
    assert response.headers["x-amzn-ErrorType"] == "WidgetNotFound"
    assert orjson.loads(response.body) == {
        "Type": "User",
        "message": "Widget w not found",
        "Name": "w",
    }
    parsed = read_response(widgets, "PutWidget", response)
    assert parsed["Error"] == {"Code": "WidgetNotFound", "Message": "Widget w not found"}
    assert parsed["ResponseMetadata"]["RequestId"] == "req-9"
    service = protocol.serialize_error(ServiceError("boom"), "r")
    assert service.status == 500
    assert orjson.loads(service.body)["Type"] == "Service"


@pytest.mark.parametrize("service", ["lambda", "apigateway", "workspaces-web", "s3control"])
def test_every_real_operation_routes_to_itself(
    service: str, service_model: Callable[[str], ServiceModel]
) -> None:
    model = service_model(service)
    table = RestRouteTable(model)
    for name in model.operation_names:
        operation = model.operation_model(name)
        path, _, literals = operation.http["requestUri"].partition("?")
        path = re.sub(
            r"\{([^}]+)\}",
            lambda m: (
                percent_encode("a/b:c", safe="/~")
                if m.group(1).endswith("+")
                else percent_encode("x:y/z")
            ),
            path,
        )
        query = {k: [v] for k, _, v in (p.partition("=") for p in literals.split("&") if p)}
        for member in operation.input_shape.required_members if operation.input_shape else []:
            shape = operation.input_shape.members[member]
            if shape.serialization.get("location") == "querystring":
                query.setdefault(shape.serialization.get("name", member), ["1"])
        found = table.match(operation.http["method"], path, query)
        assert found is not None and found[0].name == name, (name, path)
        assert all(v in ("x:y/z", "a/b:c") for v in found[1].values())


def test_required_query_members_tell_apart_shared_paths(
    service_model: Callable[[str], ServiceModel],
) -> None:
    table = RestRouteTable(service_model("s3"))  # rest-xml, but the routes are the same idea
    put = table.match("PUT", "/bucket/key", {})
    part = table.match("PUT", "/bucket/key", {"partNumber": ["1"], "uploadId": ["u"]})
    assert put is not None and put[0].name in ("PutObject", "CopyObject")
    assert part is not None and part[0].name in ("UploadPart", "UploadPartCopy")
    versions = table.match("GET", "/bucket", {"versions": [""]})
    assert versions is not None and versions[0].name == "ListObjectVersions"
    assert versions[1] == {"Bucket": "bucket"}
