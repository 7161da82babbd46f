"""The upstream HTTP/1.1 client against tiny raw servers on loopback."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lamina.gateway.http1 import ConnectError, HTTP1Client, RemoteProtocolError, Timeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return await reader.readexactly(length)


async def test_keep_alive_reuses_one_connection() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                body = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        writer.close()

    client = HTTP1Client()
    async with raw_server(handler) as url:
        for i in range(3):
            async with client.request("POST", f"{url}/x", {}, b"ping%d" % i, 5) as response:
                assert response.status == 200
                assert await response.read() == b"ping%d" % i
        await client.aclose()
    assert connections == 1


async def test_a_pooled_connection_closed_by_the_server_is_retried_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        # Keep-alive promised, then the server drops the idle connection.
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    client = HTTP1Client()
    async with raw_server(handler) as url:
        for _ in range(2):
            async with client.request("POST", url, {}, b"", 5) as response:
                assert await response.read() == b"ok"
        await client.aclose()


async def test_chunked_stream_and_early_close() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n6\r\n world\r\n")
        await writer.drain()
        writer.close()  # no terminating chunk: the stream broke off

    client = HTTP1Client()
    async with raw_server(handler) as url:
        got = []
        with pytest.raises(RemoteProtocolError):
            async with client.request("POST", url, {}, b"", 5) as response:
                async for chunk in response.chunks():
                    got.append(chunk)
        await client.aclose()
    assert b"".join(got) == b"hello world"


async def test_timeout_waiting_for_the_head() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers; returns when the client gives up

    client = HTTP1Client()
    async with raw_server(handler) as url:
        with pytest.raises(Timeout):
            async with client.request("POST", url, {}, b"", 0.2):
                pass
        await client.aclose()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_with_the_servers_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    client = HTTP1Client(ssl_context=ssl.create_default_context(cafile=str(cert)))
    try:
        async with client.request("POST", f"https://localhost:{port}/v1/x", {}, b"secret",
                                  5) as response:
            assert await response.read() == b"secret"
        untrusting = HTTP1Client()
        with pytest.raises(ConnectError):
            async with untrusting.request("POST", f"https://localhost:{port}/", {}, b"", 5):
                pass
    finally:
        await client.aclose()
        server.close()


async def test_a_slow_reader_pauses_the_server() -> None:
    total = 8 << 20  # eight times the high-water mark
    sent = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        for _ in range(total >> 16):
            writer.write(b"x" * (1 << 16))
            await writer.drain()  # blocks while the client has stopped reading
        sent.set()
        writer.close()

    client = HTTP1Client()
    async with raw_server(handler) as url:
        async with client.request("POST", url, {}, b"", 30) as response:
            chunks = response.chunks()
            first = await anext(chunks)
            await asyncio.sleep(0.2)
            assert not sent.is_set()  # back-pressure reached the server
            rest = [chunk async for chunk in chunks]
        await client.aclose()
    assert len(first) + sum(map(len, rest)) == total
