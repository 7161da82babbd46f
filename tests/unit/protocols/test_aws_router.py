"""AwsRouter: SigV4 -> service binding -> protocol -> handler, without a server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import create_request_object, prepare_request_dict
from botocore.credentials import Credentials
from botocore.model import ServiceModel
from botocore.serialize import create_serializer

from lamina.errors import LaminaError, ResourceNotFound
from lamina.protocols.context import RequestContext
from lamina.protocols.router import AwsRouter, ServiceBinding
from lamina.protocols.sigv4 import SigV4Verifier
from lamina.protocols.testing import read_response
from lamina.protocols.wire import HttpResponse

AKID, SECRET = "AKIDROUTER", "router-secret"
Raw = tuple[str, str, str, list[tuple[str, str]], bytes]


class Recorder:
    """A service handler that records its calls and answers from a script."""

    def __init__(self, answer: Callable[[str, dict[str, Any]], dict[str, Any]]) -> None:
        self.calls: list[tuple[str, dict[str, Any], RequestContext]] = []
        self.answer = answer

    async def __call__(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self.calls.append((operation, params, ctx))
        return self.answer(operation, params)


def lambda_answers(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    if operation == "Invoke":
        if params["FunctionName"] == "missing":
            raise ResourceNotFound(f"Function not found: {params['FunctionName']}")
        if params["FunctionName"] == "crash":
            raise RuntimeError("secret internals")
        return {"StatusCode": 200, "Payload": params["Payload"][::-1], "ExecutedVersion": "$LATEST"}
    if operation == "GetCallerIdentity":
        return {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:root", "UserId": AKID}
    if operation == "DescribeLogGroups":
        return {"logGroups": [{"logGroupName": "g"}]}
    raise LaminaError("not here", code="UnknownOperationException", status=400)


@pytest.fixture(scope="module")
def session() -> Any:
    return botocore.session.get_session()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(lambda_answers)


@pytest.fixture
def router(recorder: Recorder, session: Any) -> AwsRouter:
    return AwsRouter(
        {
            "lambda": ServiceBinding("lambda", recorder),
            "logs": ServiceBinding("logs", recorder),
            "sts": ServiceBinding("sts", recorder),
        },
        SigV4Verifier({AKID: SECRET}.get, time.time),
        "123456789012",
        "us-east-1",
        session=session,
    )


def signed(
    model: ServiceModel,
    operation: str,
    params: dict[str, Any],
    *,
    secret: str = SECRET,
    scope_service: str | None = None,
) -> Raw:
    """botocore's serialized and signed request, as it arrives at the server."""
    request_dict = create_serializer(model.resolved_protocol).serialize_to_request(
        params, model.operation_model(operation)
    )
    prepare_request_dict(request_dict, endpoint_url="http://127.0.0.1:9000")
    request = create_request_object(request_dict)
    signing_name = scope_service or model.signing_name
    SigV4Auth(Credentials(AKID, secret), signing_name, "eu-west-1").add_auth(request)
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    headers = [*prepared.headers.items(), ("Host", url.netloc)]
    body = prepared.body or b""
    return (
        prepared.method,
        url.path,
        url.query,
        headers,
        body.encode() if isinstance(body, str) else body,
    )


async def call(router: AwsRouter, raw: Raw) -> HttpResponse:
    return await router.handle(*raw, source_ip="10.0.0.1")


async def test_invoke_reaches_the_handler_with_context(
    router: AwsRouter, recorder: Recorder, session: Any
) -> None:
    model = session.get_service_model("lambda")
    raw = signed(model, "Invoke", {"FunctionName": "f", "Payload": b"abc", "Qualifier": "1"})
    response = await call(router, raw)
    assert (response.status, response.body) == (200, b"cba")
    operation, params, ctx = recorder.calls[0]
    assert (operation, params) == (
        "Invoke",
        {"FunctionName": "f", "Payload": b"abc", "Qualifier": "1"},
    )
    assert (ctx.access_key_id, ctx.account_id, ctx.region, ctx.service) == (
        AKID,
        "123456789012",
        "eu-west-1",
        "lambda",
    )
    assert (ctx.operation, ctx.source_ip) == ("Invoke", "10.0.0.1")
    assert ctx.headers["host"] == "127.0.0.1:9000"
    assert response.headers["x-amzn-RequestId"] == ctx.request_id
    parsed = read_response(model, "Invoke", response)
    assert parsed["ExecutedVersion"] == "$LATEST"


async def test_service_errors_render_in_the_service_protocol(
    router: AwsRouter, session: Any
) -> None:
    model = session.get_service_model("lambda")
    response = await call(router, signed(model, "Invoke", {"FunctionName": "missing"}))
    parsed = read_response(model, "Invoke", response)
    assert response.status == 404
    assert parsed["Error"] == {
        "Code": "ResourceNotFoundException",
        "Message": "Function not found: missing",
    }


async def test_unexpected_exceptions_are_500_and_logged(
    router: AwsRouter, session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    model = session.get_service_model("lambda")
    with caplog.at_level(logging.ERROR, logger="lamina.protocols.router"):
        response = await call(router, signed(model, "Invoke", {"FunctionName": "crash"}))
    assert response.status == 500
    assert response.headers["x-amzn-ErrorType"] == "ServiceException"
    assert b"secret internals" not in response.body
    assert "secret internals" in caplog.text


async def test_unknown_route_is_404_in_rest_json_shape(router: AwsRouter) -> None:
    # Signed for a path no operation has.
    request = create_request_object(
        {
            "url_path": "/2015-03-31/nothing-here",
            "query_string": "",
            "method": "GET",
            "headers": {},
            "body": b"",
            "url": "http://127.0.0.1:9000/2015-03-31/nothing-here",
            "context": {},
        }
    )
    SigV4Auth(Credentials(AKID, SECRET), "lambda", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw: Raw = (
        "GET",
        "/2015-03-31/nothing-here",
        "",
        [*prepared.headers.items(), ("Host", "127.0.0.1:9000")],
        b"",
    )
    response = await call(router, raw)
    assert response.status == 404
    assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"


async def test_json_and_query_services(router: AwsRouter, session: Any) -> None:
    logs = session.get_service_model("logs")
    response = await call(router, signed(logs, "DescribeLogGroups", {}))
    assert read_response(logs, "DescribeLogGroups", response)["logGroups"] == [
        {"logGroupName": "g"}
    ]
    sts = session.get_service_model("sts")
    response = await call(router, signed(sts, "GetCallerIdentity", {}))
    assert read_response(sts, "GetCallerIdentity", response)["UserId"] == AKID
    response = await call(router, signed(sts, "GetSessionToken", {}))
    assert read_response(sts, "GetSessionToken", response)["Error"]["Code"] == (
        "UnknownOperationException"
    )


async def test_bad_signature_for_a_known_service(router: AwsRouter, session: Any) -> None:
    model = session.get_service_model("lambda")
    response = await call(router, signed(model, "ListFunctions", {}, secret="wrong"))
    parsed = read_response(model, "ListFunctions", response)
    assert response.status == 403
    assert parsed["Error"]["Code"] == "InvalidSignatureException"
    assert parsed["Error"]["Message"].startswith("The request signature we calculated")
    sts = session.get_service_model("sts")
    response = await call(router, signed(sts, "GetCallerIdentity", {}, secret="wrong"))
    assert read_response(sts, "GetCallerIdentity", response)["Error"]["Type"] == "Sender"


async def test_unsigned_and_unbound_requests(router: AwsRouter, session: Any) -> None:
    lambda_model = session.get_service_model("lambda")
    response = await router.handle("GET", "/2015-03-31/functions", "", [("Host", "x")], b"")
    parsed = read_response(lambda_model, "ListFunctions", response)
    assert response.status == 403
    assert parsed["Error"] == {
        "Code": "MissingAuthenticationTokenException",
        "Message": "Missing Authentication Token",
    }
    # The same generic JSON body parses for json-protocol clients too.
    logs = session.get_service_model("logs")
    assert read_response(logs, "DescribeLogGroups", response)["Error"]["Code"] == (
        "MissingAuthenticationTokenException"
    )
    # Form posts (query protocol) get XML.
    sts = session.get_service_model("sts")
    form = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]
    response = await router.handle("POST", "/", "", form, b"Action=GetCallerIdentity")
    assert read_response(sts, "GetCallerIdentity", response)["Error"]["Code"] == (
        "MissingAuthenticationTokenException"
    )
    kms = session.get_service_model("kms")
    response = await call(router, signed(kms, "ListKeys", {}))
    assert response.status == 403
    assert orjson.loads(response.body)["__type"] == "InvalidSignatureException"


def asgi_scope(raw: Raw, root_path: str = "") -> dict[str, Any]:
    method, path, query, headers, _ = raw
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": (root_path + path).encode(),
        "root_path": root_path,
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("127.0.0.1", 5000),
    }


async def run_asgi(
    router: AwsRouter, scope: dict[str, Any], chunks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    incoming = iter(chunks)

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: Any) -> None:
        sent.append(message)

    await router(scope, receive, send)
    return sent


async def test_asgi_reads_a_chunked_body(router: AwsRouter, session: Any) -> None:
    model = session.get_service_model("lambda")
    raw = signed(model, "Invoke", {"FunctionName": "f", "Payload": b"0123456789"})
    body = raw[4]
    chunks = [
        {"type": "http.request", "body": body[:3], "more_body": True},
        {"type": "http.request", "body": body[3:], "more_body": False},
    ]
    sent = await run_asgi(router, asgi_scope(raw), chunks)
    start, end = sent
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-length"] == b"10"
    assert b"x-amzn-requestid" in headers
    assert end["body"] == b"9876543210"


async def test_asgi_refuses_large_bodies(recorder: Recorder, session: Any) -> None:
    router = AwsRouter(
        {"lambda": ServiceBinding("lambda", recorder)},
        SigV4Verifier({AKID: SECRET}.get),
        "1",
        "us-east-1",
        session=session,
        max_body_bytes=4,
    )
    raw = signed(
        session.get_service_model("lambda"), "Invoke", {"FunctionName": "f", "Payload": b"toolong"}
    )
    sent = await run_asgi(router, asgi_scope(raw), [{"type": "http.request", "body": raw[4]}])
    assert sent[0]["status"] == 413
    assert dict(sent[0]["headers"])[b"x-amzn-errortype"] == b"RequestTooLargeException"


async def test_asgi_ignores_disconnects(
    router: AwsRouter, recorder: Recorder, session: Any
) -> None:
    raw = signed(session.get_service_model("lambda"), "Invoke", {"FunctionName": "f"})
    sent = await run_asgi(router, asgi_scope(raw), [{"type": "http.disconnect"}])
    assert sent == [] and recorder.calls == []


async def test_mounted_under_a_prefix_routes_without_it(router: AwsRouter, session: Any) -> None:
    model = session.get_service_model("lambda")
    raw = signed(model, "Invoke", {"FunctionName": "f", "Payload": b"ab"})
    # The client signed the full path, prefix included.
    request_dict = create_serializer("rest-json").serialize_to_request(
        {"FunctionName": "f", "Payload": b"ab"}, model.operation_model("Invoke")
    )
    prepare_request_dict(request_dict, endpoint_url="http://127.0.0.1:9000/aws")
    request = create_request_object(request_dict)
    SigV4Auth(Credentials(AKID, SECRET), "lambda", "us-east-1").add_auth(request)
    prepared = request.prepare()
    headers = [*prepared.headers.items(), ("Host", "127.0.0.1:9000")]
    raw = (raw[0], raw[1], raw[2], headers, prepared.body)
    sent = await run_asgi(
        router, asgi_scope(raw, root_path="/aws"), [{"type": "http.request", "body": raw[4]}]
    )
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"ba"
