"""Shape-compiled JSON converters: fast path, recursion, type checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from botocore.model import ServiceModel

from lamina.errors import LaminaError
from lamina.protocols.json_shapes import JsonShapeCodec


def test_plain_shapes_encode_as_they_are(service_model: Callable[[str], ServiceModel]) -> None:
    # Logs' FilterLogEvents output has no blob/timestamp/float: no copy is made.
    shape = service_model("logs").operation_model("FilterLogEvents").output_shape
    value = {"events": [{"message": "m", "timestamp": 1}], "nextToken": "t"}
    assert JsonShapeCodec().encoder(shape)(value) is value


def test_recursive_shapes(widgets: ServiceModel) -> None:
    part = widgets.shape_for("Part")
    codec = JsonShapeCodec()
    value = {"Id": 1, "Child": {"Id": 2, "Child": {"Id": 3, "Raw": b"x"}}}
    encoded = codec.encoder(part)(value)
    assert encoded == {"Id": 1, "Child": {"Id": 2, "Child": {"Id": 3, "Raw": "eA=="}}}
    assert codec.decoder(part)(encoded) == value


def test_nulls_are_absent_and_non_finite_floats_are_strings(widgets: ServiceModel) -> None:
    shape = widgets.shape_for("WidgetOut")
    codec = JsonShapeCodec()
    encoded = codec.encoder(shape, body_only=True)({"Color": None, "Size": math.inf, "ETag": "x"})
    assert encoded == {"Size": "Infinity"}  # ETag is a header member: not in the body
    decoded = codec.decoder(shape, body_only=True)(
        {"Size": "NaN", "Created": "2024-01-01T00:00:00Z"}
    )
    assert math.isnan(decoded["Size"])
    assert decoded["Created"] == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"Id": True}, "Id"),
        ({"Child": []}, "Child"),
        ({"Child": {"Seen": {}}}, "Child.Seen"),
    ],
)
def test_mismatches_name_the_member(widgets: ServiceModel, value: object, where: str) -> None:
    with pytest.raises(LaminaError) as err:
        JsonShapeCodec().decoder(widgets.shape_for("Part"))(value)
    assert err.value.code == "SerializationException"
    assert f"'{where}'" in err.value.message
