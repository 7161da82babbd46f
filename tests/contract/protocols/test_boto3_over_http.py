"""A real boto3 client against AwsRouter served by uvicorn on loopback."""

from __future__ import annotations

import io
import socket
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config
from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from lamina.errors import LaminaError, ResourceConflict, ResourceNotFound
from lamina.protocols.context import RequestContext
from lamina.protocols.router import AwsRouter, ServiceBinding
from lamina.protocols.sigv4 import SigV4Verifier

AKID, SECRET = "AKIDLAMINATEST", "lamina-test-secret"
ACCOUNT = "123456789012"


class FakeLambda:
    """Just enough of Lambda to exercise the wire: functions in a dict, echo invoke."""

    def __init__(self) -> None:
        self.functions: dict[str, dict[str, Any]] = {}
        self.contexts: list[RequestContext] = []

    async def __call__(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self.contexts.append(ctx)
        if operation == "CreateFunction":
            name = params["FunctionName"]
            if name in self.functions:
                raise ResourceConflict(f"Function already exist: {name}")
            self.functions[name] = {
                "FunctionName": name,
                "FunctionArn": f"arn:aws:lambda:{ctx.region}:{ctx.account_id}:function:{name}",
                "Runtime": params.get("Runtime"),
                "CodeSize": len(params["Code"]["ZipFile"]),
                "Handler": params.get("Handler"),
                "Role": params["Role"],
            }
            return self.functions[name]
        if operation == "ListFunctions":
            names = sorted(self.functions)
            start = names.index(params["Marker"]) if "Marker" in params else 0
            page = names[start : start + params.get("MaxItems", 50)]
            out: dict[str, Any] = {"Functions": [self.functions[n] for n in page]}
            if start + len(page) < len(names):
                out["NextMarker"] = names[start + len(page)]
            return out
        if operation == "Invoke":
            name = params["FunctionName"].rsplit(":", 1)[-1]
            if name not in self.functions:
                raise ResourceNotFound(
                    f"Function not found: arn:aws:lambda:{ctx.region}:{ctx.account_id}:function:{name}"
                )
            if params.get("InvocationType") == "Event":
                return {"StatusCode": 202}
            payload = params["Payload"]
            if payload == b'"fail"':
                return {
                    "StatusCode": 200,
                    "FunctionError": "Unhandled",
                    "Payload": b'{"errorMessage": "failed", "errorType": "Exception"}',
                    "ExecutedVersion": "$LATEST",
                }
            return {
                "StatusCode": 200,
                "Payload": b'{"echo": ' + payload + b"}",
                "ExecutedVersion": "$LATEST",
            }
        raise LaminaError(f"{operation} is not implemented", code="UnknownOperationException")


@pytest.fixture(scope="module")
def fake() -> FakeLambda:
    return FakeLambda()


@pytest.fixture(scope="module")
def endpoint(fake: FakeLambda) -> Iterator[str]:
    router = AwsRouter(
        {"lambda": ServiceBinding("lambda", fake)},
        SigV4Verifier({AKID: SECRET}.get, time.time),
        ACCOUNT,
        "us-east-1",
    )

    async def health(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/health", health), Mount("/", app=router)])
    # The socket listens before the server thread starts, so clients can connect at once:
    # the kernel queues them until uvicorn accepts. No readiness polling needed.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def client(endpoint: str, secret: str = SECRET, key: str = AKID) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


def zipped() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lam(endpoint: str) -> Any:
    lam = client(endpoint)
    for i in range(7):
        lam.create_function(
            FunctionName=f"fn-{i}",
            Runtime="python3.12",
            Role=f"arn:aws:iam::{ACCOUNT}:role/r",
            Handler="app.handler",
            Code={"ZipFile": zipped()},
        )
    return lam


def test_create_function_sends_the_zip(lam: Any, fake: FakeLambda) -> None:
    assert fake.functions["fn-0"]["CodeSize"] == len(zipped())
    ctx = fake.contexts[0]
    assert (ctx.access_key_id, ctx.service, ctx.operation, ctx.region) == (
        AKID,
        "lambda",
        "CreateFunction",
        "us-east-1",
    )
    assert ctx.source_ip == "127.0.0.1"


def test_invoke_with_payload(lam: Any) -> None:
    response = lam.invoke(FunctionName="fn-1", Payload=b'{"n": 1}')
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert response["Payload"].read() == b'{"echo": {"n": 1}}'
    assert "FunctionError" not in response
    request_id = response["ResponseMetadata"]["RequestId"]
    assert len(request_id) == 36


def test_invoke_by_arn_async_and_function_error(lam: Any) -> None:
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:fn-2"
    assert lam.invoke(FunctionName=arn, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
    failed = lam.invoke(FunctionName="fn-2", Payload=b'"fail"')
    assert failed["FunctionError"] == "Unhandled"
    assert b"errorMessage" in failed["Payload"].read()


def test_list_functions_paginator(lam: Any) -> None:
    pages = list(lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 3}))
    assert [len(p["Functions"]) for p in pages] == [3, 3, 1]
    names = [f["FunctionName"] for p in pages for f in p["Functions"]]
    assert names == [f"fn-{i}" for i in range(7)]


def test_errors_are_client_errors(lam: Any) -> None:
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName="nope", Payload=b"{}")
    error = err.value.response["Error"]
    assert error["Code"] == "ResourceNotFoundException"
    assert (
        error["Message"] == f"Function not found: arn:aws:lambda:us-east-1:{ACCOUNT}:function:nope"
    )
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert isinstance(err.value, lam.exceptions.ResourceNotFoundException)
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.create_function(
            FunctionName="fn-0",
            Runtime="python3.12",
            Role=f"arn:aws:iam::{ACCOUNT}:role/r",
            Handler="app.handler",
            Code={"ZipFile": b"x"},
        )


def test_unimplemented_operation(lam: Any) -> None:
    with pytest.raises(ClientError) as err:
        lam.get_account_settings()
    assert err.value.response["Error"]["Code"] == "UnknownOperationException"


def test_wrongly_signed_clients_get_403(endpoint: str, lam: Any) -> None:
    with pytest.raises(ClientError) as err:
        client(endpoint, secret="wrong").list_functions()
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as err:
        client(endpoint, key="AKIDUNKNOWN").list_functions()
    assert err.value.response["Error"] == {
        "Code": "UnrecognizedClientException",
        "Message": "The security token included in the request is invalid.",
    }


def test_other_routes_still_work(endpoint: str) -> None:
    with urllib.request.urlopen(f"{endpoint}/health", timeout=5) as response:
        assert response.read() == b"ok"
