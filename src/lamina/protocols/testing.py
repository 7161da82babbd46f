"""botocore as the client side of our protocols, for tests of protocols and services.

`wire_request` is what botocore would put on the wire for an operation call, as the
`HttpRequest` a protocol parses; `read_response` is botocore's own reading of an
`HttpResponse`, exactly as a boto3 client would see it. Service tests use these to
check their handlers against the real wire shapes without starting a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import HeadersDict, create_request_object, prepare_request_dict
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from lamina.protocols.wire import HttpRequest, HttpResponse, parse_query_string


def wire_request(
    model: ServiceModel,
    operation: str,
    params: Mapping[str, Any],
    endpoint_url: str = "http://localhost:4566",
) -> HttpRequest:
    """The request botocore sends for `operation(**params)` (unsigned)."""
    op = model.operation_model(operation)
    serializer = create_serializer(_protocol(model))
    request_dict = serializer.serialize_to_request(dict(params), op)
    prepare_request_dict(request_dict, endpoint_url=endpoint_url)
    prepared = create_request_object(request_dict).prepare()
    url = urlsplit(prepared.url)
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    query = parse_query_string(url.query)
    headers = {str(k).lower(): str(v) for k, v in prepared.headers.items()}
    return HttpRequest(str(prepared.method), url.path, query, headers, bytes(body))


def read_response(model: ServiceModel, operation: str, response: HttpResponse) -> Any:
    """What a boto3 client makes of `response` (errors come back as {"Error": ...})."""
    parser = create_parser(_protocol(model))
    return parser.parse(
        {
            "status_code": response.status,
            # Case-insensitive, like the urllib3 headers a real client hands the parser.
            "headers": HeadersDict(response.headers),
            "body": response.body,
            "context": {"operation_name": operation},
        },
        model.operation_model(operation).output_shape,
    )


def _protocol(model: ServiceModel) -> str:
    return str(getattr(model, "resolved_protocol", None) or model.protocol)
