"""The runtime's pieces in-process: the HTTP client, the marshaller, error shapes."""

from __future__ import annotations

import decimal
import importlib.util
import json
import socket
import threading
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from tests.unit.runtimes.python_runtime_harness import BOOTSTRAP


@pytest.fixture(scope="module")
def runtime() -> ModuleType:
    """The runtime package, loaded the way bootstrap.py loads it."""
    spec = importlib.util.spec_from_file_location("lamina_python_bootstrap", BOOTSTRAP)
    assert spec is not None and spec.loader is not None
    bootstrap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap)
    bootstrap.load_runtime()
    return importlib.import_module("_lamina_runtime")


def _module(runtime: ModuleType, name: str) -> ModuleType:
    return importlib.import_module(f"{runtime.__name__}.{name}")


Script = Callable[[socket.socket, bytes], None]
RawServer = Callable[[list[Script]], str]


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    """A loopback server answering each accepted connection with the next script."""
    listener = socket.create_server(("127.0.0.1", 0))
    threads: list[threading.Thread] = []

    def start(scripts: list[Script]) -> str:
        def serve() -> None:
            for script in scripts:
                conn, _ = listener.accept()
                with conn:
                    script(conn, _read_request(conn))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return f"127.0.0.1:{listener.getsockname()[1]}"

    yield start
    listener.close()
    for thread in threads:
        thread.join(timeout=5)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            while len(body) < int(line.split(b":")[1]):
                body += conn.recv(65536)
    return data


def test_chunked_response_and_connection_close(runtime: ModuleType, raw_server: RawServer) -> None:
    api_module = _module(runtime, "runtime_api")

    def chunked(conn: socket.socket, request: bytes) -> None:
        assert request.startswith(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n")
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
            b"Lambda-Runtime-Aws-Request-Id: r1\r\n\r\n"
            b'5;ext=1\r\n{"a":\r\n3\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n'
        )

    client = api_module.RuntimeApiClient(raw_server([chunked]))
    response = client.next_invocation()
    assert response.headers["lambda-runtime-aws-request-id"] == "r1"
    assert json.loads(response.body) == {"a": 1}
    assert client._sock is None  # Connection: close honoured


def test_reconnects_once_when_an_idle_connection_was_closed(
    runtime: ModuleType, raw_server: RawServer
) -> None:
    api_module = _module(runtime, "runtime_api")
    seen: list[bytes] = []

    def answer_then_hang_up(conn: socket.socket, request: bytes) -> None:
        seen.append(request)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    def accepted(conn: socket.socket, request: bytes) -> None:
        seen.append(request)
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    client = api_module.RuntimeApiClient(raw_server([answer_then_hang_up, accepted]))
    client.next_invocation()
    response = client.post_response("r1", b'"ok"', "application/json")
    assert response.status == 202
    assert seen[1].startswith(b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\n")
    assert seen[1].endswith(b'\r\n\r\n"ok"')
    assert b"Content-Length: 4\r\n" in seen[1]


def test_host_gone_when_nothing_listens(runtime: ModuleType) -> None:
    api_module = _module(runtime, "runtime_api")
    probe = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    with pytest.raises(api_module.HostGone):
        api_module.RuntimeApiClient(address).next_invocation()


def test_non_200_from_next_is_an_error(runtime: ModuleType, raw_server: RawServer) -> None:
    api_module = _module(runtime, "runtime_api")

    def refuse(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}")

    with pytest.raises(api_module.RuntimeApiError, match="Reason: '500'"):
        api_module.RuntimeApiClient(raw_server([refuse])).next_invocation()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"d": decimal.Decimal("1.10")}, '{"d": 1.10}'),
        ([decimal.Decimal("-0"), decimal.Decimal("1E+2")], "[-0, 1E+2]"),
        (decimal.Decimal("12345678901234567890.000001"), "12345678901234567890.000001"),
        ({"nan": decimal.Decimal("NaN"), "f": 1.5}, '{"nan": NaN, "f": 1.5}'),
        ({"s": "lamina-decimal-"}, '{"s": "lamina-decimal-"}'),
        ("é", '"\\u00e9"'),
    ],
)
def test_marshal_matches_awslambdaric(runtime: ModuleType, value: object, expected: str) -> None:
    marshaller = _module(runtime, "payload").Marshaller(None)
    body, content_type = marshaller.marshal(value)
    assert (body.decode(), content_type) == (expected, "application/json")


def test_marshal_keeps_unicode_from_python312(runtime: ModuleType) -> None:
    marshaller = _module(runtime, "payload").Marshaller("AWS_Lambda_python3.12")
    assert marshaller.marshal({"u": "é✓"})[0] == '{"u": "é✓"}'.encode()


def test_marshal_bytes_and_errors(runtime: ModuleType) -> None:
    payload = _module(runtime, "payload")
    faults = _module(runtime, "faults")
    marshaller = payload.Marshaller(None)
    assert marshaller.marshal(b"\x00raw") == (b"\x00raw", "application/unknown")
    with pytest.raises(faults.FaultException) as caught:
        marshaller.marshal({"s": {1}})
    assert caught.value.exception_type == "Runtime.MarshalError"
    assert (
        caught.value.msg
        == "Unable to marshal response: Object of type set is not JSON serializable"
    )
    with pytest.raises(faults.FaultException) as caught:
        marshaller.unmarshal(b"{", "application/json")
    assert caught.value.exception_type == "Runtime.UnmarshalError"
    assert marshaller.unmarshal(b"<xml/>", "application/xml") == b"<xml/>"
    assert marshaller.unmarshal(b'{"a": 1}', None) == {"a": 1}


def test_error_log_lines_use_no_break_spaces(runtime: ModuleType) -> None:
    faults = _module(runtime, "faults")
    error = faults.make_error("x", "ValueError", ['  File "a.py", line 1, in h\n    raise X\n'])
    assert faults.error_log_lines(error) == [
        "[ERROR] ValueError: x",
        "Traceback (most recent call last):",
        '\u00a0\u00a0File "a.py", line 1, in h',
        "\u00a0\u00a0\u00a0\u00a0raise X",
    ]
