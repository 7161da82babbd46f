"""Real botocore models, plus two small made-up ones that use every feature of their
protocol (botocore's serializers and parsers accept any model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
from botocore.model import ServiceModel


@pytest.fixture(scope="session")
def service_model() -> Callable[[str], ServiceModel]:
    """Loads botocore service models once per test session (loading is the slow part)."""
    session = botocore.session.get_session()
    cache: dict[str, ServiceModel] = {}

    def load(name: str) -> ServiceModel:
        if name not in cache:
            cache[name] = session.get_service_model(name)
        return cache[name]

    return load


def _op(method: str, uri: str, inp: str | None, out: str | None, code: int = 200) -> Any:
    op: dict[str, Any] = {"http": {"method": method, "requestUri": uri, "responseCode": code}}
    if inp:
        op["input"] = {"shape": inp}
    if out:
        op["output"] = {"shape": out}
    op["errors"] = [{"shape": "WidgetNotFound"}]
    return op


WIDGETS: dict[str, Any] = {
    "metadata": {
        "apiVersion": "2020-01-01",
        "endpointPrefix": "widgets",
        "protocol": "rest-json",
        "serviceId": "Widgets",
        "signatureVersion": "v4",
        "uid": "widgets-2020-01-01",
    },
    "operations": {
        "PutWidget": _op("PUT", "/2020-01-01/widgets/{Name}", "PutWidgetInput", "WidgetOut", 201),
        "GetWidgetData": _op("GET", "/2020-01-01/widgets/{Name}/data", "NameInput", "DataOut"),
        "SetConfig": _op("POST", "/2020-01-01/widgets/{Name}/config", "ConfigIn", "ConfigOut"),
        "GetFile": _op("GET", "/2020-01-01/files/{Path+}/meta", "FileInput", None),
        "ListWidgets": _op("GET", "/2020-01-01/widgets", None, "WidgetOut"),
        "FindWidget": _op("GET", "/2020-01-01/widgets?find=Widget", "FindInput", "WidgetOut"),
        "DeleteWidget": _op("DELETE", "/2020-01-01/widgets/{Name}", "NameInput", None, 204),
    },
    "shapes": {
        "String": {"type": "string"},
        "Integer": {"type": "integer"},
        "Long": {"type": "long"},
        "Boolean": {"type": "boolean"},
        "Double": {"type": "double"},
        "Timestamp": {"type": "timestamp"},
        "IsoTimestamp": {"type": "timestamp", "timestampFormat": "iso8601"},
        "Blob": {"type": "blob"},
        "JsonDoc": {"type": "string", "jsonvalue": True},
        "StringList": {"type": "list", "member": {"shape": "String"}},
        "IntegerList": {"type": "list", "member": {"shape": "Integer"}},
        "StringMap": {"type": "map", "key": {"shape": "String"}, "value": {"shape": "String"}},
        "PartMap": {"type": "map", "key": {"shape": "String"}, "value": {"shape": "Part"}},
        "PartList": {"type": "list", "member": {"shape": "Part"}},
        "Part": {
            "type": "structure",
            "members": {
                "Id": {"shape": "Integer"},
                "Seen": {"shape": "IsoTimestamp"},
                "Child": {"shape": "Part"},
                "Raw": {"shape": "Blob"},
            },
        },
        "PutWidgetInput": {
            "type": "structure",
            "required": ["Name"],
            "members": {
                "Name": {"shape": "String", "location": "uri", "locationName": "Name"},
                "Tags": {"shape": "StringList", "location": "querystring", "locationName": "tag"},
                "Limit": {"shape": "Integer", "location": "querystring", "locationName": "limit"},
                "Force": {"shape": "Boolean", "location": "querystring", "locationName": "force"},
                "Since": {"shape": "Timestamp", "location": "querystring", "locationName": "since"},
                "Extra": {"shape": "StringMap", "location": "querystring"},
                "Trace": {"shape": "String", "location": "header", "locationName": "X-Trace"},
                "Count": {"shape": "Long", "location": "header", "locationName": "X-Count"},
                "Flags": {"shape": "StringList", "location": "header", "locationName": "X-Flags"},
                "When": {"shape": "Timestamp", "location": "header", "locationName": "X-When"},
                "Meta": {"shape": "StringMap", "location": "headers", "locationName": "x-meta-"},
                "Doc": {"shape": "JsonDoc", "location": "header", "locationName": "X-Doc"},
                "Color": {"shape": "String"},
                "Size": {"shape": "Double"},
                "Created": {"shape": "Timestamp"},
                "Data": {"shape": "Blob"},
                "Parts": {"shape": "PartList"},
                "ByName": {"shape": "PartMap"},
                "Renamed": {"shape": "String", "locationName": "renamed_on_wire"},
            },
        },
        "WidgetOut": {
            "type": "structure",
            "members": {
                "Status": {"shape": "Integer", "location": "statusCode"},
                "ETag": {"shape": "String", "location": "header", "locationName": "ETag"},
                "Modified": {"shape": "Timestamp", "location": "header", "locationName": "X-Mod"},
                "Ids": {"shape": "IntegerList", "location": "header", "locationName": "X-Ids"},
                "Flags": {"shape": "StringList", "location": "header", "locationName": "X-Flags"},
                "Meta": {"shape": "StringMap", "location": "headers", "locationName": "x-meta-"},
                "Doc": {"shape": "JsonDoc", "location": "header", "locationName": "X-Doc"},
                "Color": {"shape": "String"},
                "Size": {"shape": "Double"},
                "Created": {"shape": "Timestamp"},
                "Data": {"shape": "Blob"},
                "Parts": {"shape": "PartList"},
                "ByName": {"shape": "PartMap"},
                "Renamed": {"shape": "String", "locationName": "renamed_on_wire"},
            },
        },
        "NameInput": {
            "type": "structure",
            "required": ["Name"],
            "members": {"Name": {"shape": "String", "location": "uri", "locationName": "Name"}},
        },
        "DataOut": {
            "type": "structure",
            "payload": "Data",
            "members": {
                "Data": {"shape": "Blob"},
                "Kind": {"shape": "String", "location": "header", "locationName": "X-Kind"},
            },
        },
        "Config": {"type": "structure", "members": {"Level": {"shape": "Integer"}}},
        "ConfigIn": {
            "type": "structure",
            "required": ["Name"],
            "payload": "Config",
            "members": {
                "Name": {"shape": "String", "location": "uri", "locationName": "Name"},
                "Config": {"shape": "Config"},
            },
        },
        "ConfigOut": {
            "type": "structure",
            "payload": "Config",
            "members": {"Config": {"shape": "Config"}},
        },
        "FileInput": {
            "type": "structure",
            "required": ["Path"],
            "members": {"Path": {"shape": "String", "location": "uri", "locationName": "Path"}},
        },
        "FindInput": {
            "type": "structure",
            "members": {
                "Extra": {"shape": "StringMap", "location": "querystring"},
                "Q": {"shape": "String", "location": "querystring", "locationName": "q"},
            },
        },
        "WidgetNotFound": {
            "type": "structure",
            "members": {"message": {"shape": "String"}, "Name": {"shape": "String"}},
            "error": {"httpStatusCode": 404, "senderFault": True},
            "exception": True,
        },
    },
}

GADGETS: dict[str, Any] = {
    "metadata": {
        "apiVersion": "2021-02-03",
        "endpointPrefix": "gadgets",
        "protocol": "query",
        "serviceId": "Gadgets",
        "signatureVersion": "v4",
        "uid": "gadgets-2021-02-03",
        "xmlNamespace": "https://gadgets.example.com/doc/2021-02-03/",
    },
    "operations": {
        "PutGadget": {
            "http": {"method": "POST", "requestUri": "/"},
            "input": {"shape": "GadgetIn"},
            "output": {"shape": "GadgetOut", "resultWrapper": "PutGadgetResult"},
        },
        "Ping": {"http": {"method": "POST", "requestUri": "/"}},
    },
    "shapes": {
        "String": {"type": "string"},
        "Integer": {"type": "integer"},
        "Boolean": {"type": "boolean"},
        "Double": {"type": "double"},
        "Timestamp": {"type": "timestamp"},
        "Blob": {"type": "blob"},
        "Attrs": {"type": "map", "key": {"shape": "String"}, "value": {"shape": "String"}},
        "FlatAttrs": {
            "type": "map",
            "key": {"shape": "String", "locationName": "Name"},
            "value": {"shape": "String", "locationName": "Value"},
            "flattened": True,
        },
        "Names": {"type": "list", "member": {"shape": "String"}},
        "FlatNames": {
            "type": "list",
            "member": {"shape": "String", "locationName": "Name"},
            "flattened": True,
        },
        "Items": {"type": "list", "member": {"shape": "Item", "locationName": "item"}},
        "Item": {
            "type": "structure",
            "members": {"Id": {"shape": "Integer"}, "Sub": {"shape": "Item"}},
        },
        "GadgetIn": {
            "type": "structure",
            "members": {
                "Title": {"shape": "String"},
                "Count": {"shape": "Integer"},
                "On": {"shape": "Boolean"},
                "Ratio": {"shape": "Double"},
                "At": {"shape": "Timestamp"},
                "Data": {"shape": "Blob"},
                "Attributes": {"shape": "Attrs"},
                "Names": {"shape": "Names"},
                "Empty": {"shape": "Names"},
                "Items": {"shape": "Items"},
            },
        },
        "GadgetOut": {
            "type": "structure",
            "members": {
                "Title": {"shape": "String"},
                "Count": {"shape": "Integer"},
                "On": {"shape": "Boolean"},
                "Ratio": {"shape": "Double"},
                "At": {"shape": "Timestamp"},
                "Data": {"shape": "Blob"},
                "Attributes": {"shape": "Attrs"},
                "Flat": {"shape": "FlatAttrs"},
                "Names": {"shape": "Names"},
                "FlatNames": {"shape": "FlatNames"},
                "Items": {"shape": "Items"},
            },
        },
    },
}


@pytest.fixture(scope="session")
def widgets() -> ServiceModel:
    return ServiceModel(WIDGETS, service_name="widgets")


@pytest.fixture(scope="session")
def gadgets() -> ServiceModel:
    return ServiceModel(GADGETS, service_name="gadgets")
