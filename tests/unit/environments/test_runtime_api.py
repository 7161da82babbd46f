"""RuntimeApiServer on loopback, driven by http.client, routing to a fake handler."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import pytest

from lamina.environments.runtime_api import (
    ACCEPTED,
    MAX_BODY,
    Deliver,
    Invocation,
    Reply,
    RuntimeApiServer,
    error_reply,
)

BASE = "/2018-06-01/runtime"
NEXT = f"{BASE}/invocation/next"
RID = "2e6ab2d4-d3a4-4bd6-9d4b-0f0b0a8f1c2e"
INVOCATION = Invocation(
    request_id=RID,
    payload=b'{"hello": "world"}',
    deadline_ms=1_700_000_003_000,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn:live",
    trace_id="Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
    client_context='{"custom": {"k": "v"}}',
    cognito_identity='{"cognitoIdentityId": "id", "cognitoIdentityPoolId": "pool"}',
)


@dataclass
class FakeHandler:
    """Records each call; a /next's deliver is kept for the test to call."""

    queued: list[Invocation] = field(default_factory=list)
    waiting: list[Deliver] = field(default_factory=list)
    asked: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[tuple[object, ...]] = field(default_factory=list)
    known: set[str] = field(default_factory=lambda: {RID})

    def next_invocation(self, deliver: Deliver) -> None:
        if self.queued:
            assert deliver(self.queued.pop(0))
        self.waiting.append(deliver)
        self.asked.set()

    def invocation_response(self, request_id: str, body: bytes, too_large: bool) -> Reply:
        self.calls.append(("response", request_id, body, too_large))
        if request_id not in self.known:
            return error_reply(400, "InvalidRequestID", "Invalid request ID")
        if too_large:
            return error_reply(413, "Function.ResponseSizeTooLarge", "too large")
        return ACCEPTED

    def invocation_error(self, request_id: str, error_type: str | None, body: bytes) -> Reply:
        self.calls.append(("error", request_id, error_type, body))
        return ACCEPTED

    def init_error(self, error_type: str | None, body: bytes) -> Reply:
        self.calls.append(("init_error", error_type, body))
        return ACCEPTED


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


def call(
    address: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler()


@pytest.fixture
async def address(handler: FakeHandler) -> AsyncIterator[str]:
    server = RuntimeApiServer(handler)
    bound = await server.start()
    assert bound == server.address
    assert bound.startswith("127.0.0.1:")
    yield bound
    server.close()


async def test_next_long_polls_until_an_invocation_arrives(
    handler: FakeHandler, address: str
) -> None:
    poll = asyncio.ensure_future(asyncio.to_thread(call, address, "GET", NEXT))
    await handler.asked.wait()
    assert not poll.done()  # the runtime is parked in /next
    assert handler.waiting[0](INVOCATION)
    answer = await poll
    assert answer.status == 200
    assert answer.body == INVOCATION.payload
    assert answer.headers == {
        "content-type": "application/json",
        "lambda-runtime-aws-request-id": RID,
        "lambda-runtime-deadline-ms": "1700000003000",
        "lambda-runtime-invoked-function-arn": INVOCATION.invoked_function_arn,
        "lambda-runtime-trace-id": INVOCATION.trace_id,
        "lambda-runtime-client-context": INVOCATION.client_context,
        "lambda-runtime-cognito-identity": INVOCATION.cognito_identity,
        "content-length": str(len(INVOCATION.payload)),
    }


async def test_next_answers_at_once_when_an_invocation_is_queued(
    handler: FakeHandler, address: str
) -> None:
    plain = Invocation(RID, b"[]", 1, "arn:x", "Root=1")
    handler.queued.append(plain)
    answer = await asyncio.to_thread(call, address, "GET", NEXT + "?ignored=query")
    assert answer.body == b"[]"
    assert answer.headers["lambda-runtime-aws-request-id"] == RID
    # Optional headers are left out, not sent empty.
    assert "lambda-runtime-client-context" not in answer.headers
    assert "lambda-runtime-cognito-identity" not in answer.headers


async def test_an_empty_payload_is_delivered(handler: FakeHandler, address: str) -> None:
    handler.queued.append(Invocation(RID, b"", 1, "arn:x", "Root=1"))
    answer = await asyncio.to_thread(call, address, "GET", NEXT)
    assert (answer.status, answer.body, answer.headers["content-length"]) == (200, b"", "0")


async def test_response_is_routed_with_its_request_id_and_body(
    handler: FakeHandler, address: str
) -> None:
    answer = await asyncio.to_thread(
        call, address, "POST", f"{BASE}/invocation/{RID}/response", b'{"ok": true}'
    )
    assert (answer.status, answer.reason) == (202, "Accepted")
    assert orjson.loads(answer.body) == {"status": "OK"}
    assert handler.calls == [("response", RID, b'{"ok": true}', False)]


async def test_error_is_routed_with_its_error_type_header(
    handler: FakeHandler, address: str
) -> None:
    body = b'{"errorMessage": "boom", "errorType": "ValueError"}'
    headers = {"Lambda-Runtime-Function-Error-Type": "Unhandled"}
    answer = await asyncio.to_thread(
        call, address, "POST", f"{BASE}/invocation/{RID}/error", body, headers
    )
    assert answer.status == 202
    assert handler.calls == [("error", RID, "Unhandled", body)]


async def test_error_without_an_error_type(handler: FakeHandler, address: str) -> None:
    await asyncio.to_thread(call, address, "POST", f"{BASE}/invocation/{RID}/error", b"oops")
    assert handler.calls == [("error", RID, None, b"oops")]


async def test_init_error_is_routed(handler: FakeHandler, address: str) -> None:
    body = b'{"errorMessage": "no module", "errorType": "Runtime.ImportModuleError"}'
    headers = {"lambda-runtime-function-error-type": "Runtime.ImportModuleError"}
    answer = await asyncio.to_thread(call, address, "POST", f"{BASE}/init/error", body, headers)
    assert answer.status == 202
    assert handler.calls == [("init_error", "Runtime.ImportModuleError", body)]


async def test_the_handlers_reply_is_rendered_as_is(handler: FakeHandler, address: str) -> None:
    answer = await asyncio.to_thread(
        call, address, "POST", f"{BASE}/invocation/not-a-request/response", b"{}"
    )
    assert (answer.status, answer.reason) == (400, "Bad Request")
    assert answer.headers["content-type"] == "application/json"
    assert orjson.loads(answer.body) == {
        "errorMessage": "Invalid request ID",
        "errorType": "InvalidRequestID",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/2018-06-01/runtime"),
        ("GET", "/2019-01-01/runtime/invocation/next"),
        ("GET", f"{BASE}/unknown"),
        ("POST", NEXT),
        ("GET", f"{BASE}/invocation/{RID}/response"),
        ("POST", f"{BASE}/invocation/{RID}/bogus"),
        ("POST", f"{BASE}/invocation/{RID}"),
        ("GET", f"{BASE}/init/error"),
        ("PUT", f"{BASE}/init/error"),
    ],
)
async def test_unknown_paths_and_methods_are_404(
    handler: FakeHandler, address: str, method: str, path: str
) -> None:
    answer = await asyncio.to_thread(call, address, method, path, b"{}")
    assert (answer.status, answer.reason) == (404, "Not Found")
    assert orjson.loads(answer.body)["errorType"] == "NotFound"
    assert handler.calls == []


async def test_oversize_body_is_flagged_and_not_buffered(
    handler: FakeHandler, address: str
) -> None:
    path = f"{BASE}/invocation/{RID}/response"
    answer = await asyncio.to_thread(call, address, "POST", path, b"x" * (MAX_BODY + 1))
    assert (answer.status, answer.reason) == (413, "Request Entity Too Large")
    _, rid, body, too_large = handler.calls[-1]
    assert rid == RID and too_large is True
    assert isinstance(body, bytes) and len(body) <= MAX_BODY


async def test_body_at_the_limit_is_not_flagged(handler: FakeHandler, address: str) -> None:
    path = f"{BASE}/invocation/{RID}/response"
    answer = await asyncio.to_thread(call, address, "POST", path, b"x" * MAX_BODY)
    assert answer.status == 202
    _, _, body, too_large = handler.calls[-1]
    assert too_large is False and body == b"x" * MAX_BODY


async def test_keep_alive_connection_serves_requests_in_order(
    handler: FakeHandler, address: str
) -> None:
    handler.queued += [INVOCATION, Invocation("second", b"2", 1, "arn:x", "Root=2")]

    def runtime_loop() -> list[str]:
        host, port = address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        seen = []
        for _ in range(2):
            conn.request("GET", NEXT)
            resp = conn.getresponse()
            resp.read()
            rid = resp.getheader("Lambda-Runtime-Aws-Request-Id") or ""
            conn.request("POST", f"{BASE}/invocation/{rid}/response", body=rid.encode())
            conn.getresponse().read()
            seen.append(rid)
        conn.close()
        return seen

    assert await asyncio.to_thread(runtime_loop) == [RID, "second"]
    assert [c[1] for c in handler.calls] == [RID, "second"]


async def test_malformed_http_is_400_and_closes(address: str) -> None:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"\x00\x01 not http at all\r\n\r\n")
    await writer.drain()
    data = await reader.read()  # until the server closes the connection
    writer.close()
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"malformed HTTP request" in data


async def test_a_runtime_that_hangs_up_in_next_takes_no_event(
    handler: FakeHandler, address: str
) -> None:
    host, port = address.rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {NEXT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    await handler.asked.wait()
    writer.close()
    await writer.wait_closed()
    # Once the server has seen the hang-up, delivery says no (the event stays queued
    # in the environment for the runtime's next ask) instead of writing into nothing.
    deadline = asyncio.get_running_loop().time() + 5
    while handler.waiting[0](INVOCATION):
        assert asyncio.get_running_loop().time() < deadline, "the hang-up went unseen"
        await asyncio.sleep(0.01)


async def test_a_closed_server_refuses_connections(handler: FakeHandler) -> None:
    server = RuntimeApiServer(handler)
    address = await server.start()
    server.close()
    server.close()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(call, address, "GET", NEXT)
