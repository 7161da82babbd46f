"""Properties over arbitrary input: whatever botocore signs and serializes, we verify
and parse back to the same params."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import create_request_object, prepare_request_dict
from botocore.credentials import Credentials
from botocore.model import ServiceModel
from botocore.serialize import create_serializer
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lamina.protocols.rest_json import RestJsonProtocol
from lamina.protocols.sigv4 import SigV4Verifier
from lamina.protocols.wire import HttpRequest, parse_query_string

# Any Unicode text botocore can encode (no lone surrogates), never empty.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def lambda_model(service_model: Callable[[str], ServiceModel]) -> ServiceModel:
    return service_model("lambda")


@pytest.fixture(scope="module")
def protocol(lambda_model: ServiceModel) -> RestJsonProtocol:
    return RestJsonProtocol(lambda_model)


def signed_request(model: ServiceModel, operation: str, params: dict[str, Any]) -> Any:
    request_dict = create_serializer("rest-json").serialize_to_request(
        params, model.operation_model(operation)
    )
    prepare_request_dict(request_dict, endpoint_url="http://127.0.0.1:9000")
    request = create_request_object(request_dict)
    SigV4Auth(Credentials("AK", "SK"), "lambda", "us-east-1").add_auth(request)
    return request.prepare()


@settings(max_examples=150, deadline=None)
@given(name=TEXT, qualifier=TEXT, payload=st.binary(max_size=64))
@example(name="..", qualifier="+ =&", payload=b"")
@example(name=".", qualifier="%2F", payload=b"{}")
@example(name="a/../b", qualifier="~!*'()", payload=b"\x00")
def test_invoke_signs_routes_and_parses(
    lambda_model: ServiceModel,
    protocol: RestJsonProtocol,
    name: str,
    qualifier: str,
    payload: bytes,
) -> None:
    params = {"FunctionName": name, "Qualifier": qualifier, "Payload": payload}
    prepared = signed_request(lambda_model, "Invoke", params)
    url = urlsplit(prepared.url)
    headers = [*prepared.headers.items(), ("Host", url.netloc)]
    body = prepared.body or b""
    identity = SigV4Verifier({"AK": "SK"}.get, time.time).verify(
        prepared.method, url.path, url.query, headers, body
    )
    assert identity.service == "lambda"
    request = HttpRequest(
        prepared.method,
        url.path,
        parse_query_string(url.query),
        {k.lower(): v for k, v in headers},
        body,
    )
    parsed = protocol.parse_request(request)
    assert (parsed.operation, parsed.params) == ("Invoke", params)
