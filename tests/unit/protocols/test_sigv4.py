"""SigV4 verification against requests signed by botocore itself."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.errors import LaminaError
from lamina.protocols.sigv4 import SigV4Error, SigV4Identity, SigV4Verifier

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ENDPOINT = "http://127.0.0.1:4566"

Wire = tuple[str, str, str, list[tuple[str, str]], bytes]


def secrets(key: str) -> str | None:
    return {AKID: SECRET}.get(key)


def sign(
    url: str,
    *,
    method: str = "POST",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    service: str = "lambda",
    region: str = "us-east-1",
    token: str | None = None,
    secret: str = SECRET,
    presign_expires: int | None = None,
    signer: Any = None,
) -> Wire:
    """Sign like a real client and return the request as it would arrive."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    credentials = Credentials(AKID, secret, token)
    if signer is not None:
        signer(credentials, service, region).add_auth(request)
    elif presign_expires is not None:
        SigV4QueryAuth(credentials, service, region, expires=presign_expires).add_auth(request)
    else:
        SigV4Auth(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    wire_headers = [(k, v) for k, v in prepared.headers.items()]
    if not any(k.lower() == "host" for k, _ in wire_headers):
        wire_headers.append(("Host", parts.netloc))  # what the HTTP client adds
    return prepared.method, parts.path, parts.query, wire_headers, prepared.body or b""


def verify(wire: Wire, clock: Callable[[], float] = time.time) -> SigV4Identity:
    return SigV4Verifier(secrets, clock).verify(*wire)


@pytest.mark.parametrize(
    "path",
    [
        "/2015-03-31/functions",
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations",
        "/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:f/invocations",
        "/2015-03-31/functions/with%20space%2Fslash/configuration",
        "/2015-03-31/functions/%25percent%25/policy",
        "/2015-03-31/functions/%E2%9C%93-%C3%BCnicode/aliases",
        "/a/./b/../c//d/",
        "/",
    ],
)
def test_botocore_signed_paths_verify(path: str) -> None:
    identity = verify(sign(ENDPOINT + path, body=b'{"x": 1}'))
    assert identity == SigV4Identity(AKID, "us-east-1", "lambda", None)


@pytest.mark.parametrize(
    "query",
    [
        "Marker=abc&MaxItems=10",
        "a=1&a=0&a=10",  # repeated keys sort by value
        "b=&a=",  # empty values
        "versions",  # a key without "="
        "Qualifier=%24LATEST&x=a%20b%2Bc&y=%E2%9C%93",
        "z=1&Z=2&_=3&-=4",
    ],
)
def test_botocore_signed_queries_verify(query: str) -> None:
    wire = sign(f"{ENDPOINT}/2015-03-31/functions?{query}", method="GET")
    assert verify(wire).service == "lambda"


def test_session_token_region_and_service_come_from_the_scope() -> None:
    wire = sign(f"{ENDPOINT}/", service="logs", region="eu-west-3", token="TOKEN/==")
    assert verify(wire) == SigV4Identity(AKID, "eu-west-3", "logs", "TOKEN/==")


def test_padded_header_values_are_trimmed() -> None:
    method, path, query, headers, body = sign(
        f"{ENDPOINT}/", headers={"X-Amz-Meta-Thing": "  a   b  "}
    )
    assert verify((method, path, query, headers, body))


def test_unsigned_payload_header_skips_body_hash() -> None:
    wire = sign(f"{ENDPOINT}/", body=b"data", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    method, path, query, headers, _ = wire
    assert verify((method, path, query, headers, b"other data"))


def test_declared_content_hash_must_match_body() -> None:
    digest = hashlib.sha256(b"data").hexdigest()
    method, path, query, headers, _ = sign(
        f"{ENDPOINT}/", body=b"data", headers={"X-Amz-Content-SHA256": digest}
    )
    assert verify((method, path, query, headers, b"data"))
    with pytest.raises(LaminaError) as err:
        verify((method, path, query, headers, b"evil"))
    assert err.value.code == "XAmzContentSHA256Mismatch"


def test_presigned_url_verifies() -> None:
    wire = sign(f"{ENDPOINT}/2015-03-31/functions?Marker=a", method="GET", presign_expires=60)
    assert "X-Amz-Signature=" in wire[2]
    assert verify(wire).access_key_id == AKID


def test_s3_presigned_url_uses_unsigned_payload_and_raw_path() -> None:
    wire = sign(
        f"{ENDPOINT}/bucket/key%20with%20space/%E2%9C%93",
        method="GET",
        service="s3",
        signer=lambda c, s, r: S3SigV4QueryAuth(c, s, r, expires=60),
    )
    assert verify(wire).service == "s3"


def test_presigned_url_expires() -> None:
    wire = sign(f"{ENDPOINT}/", method="GET", presign_expires=60)
    with pytest.raises(SigV4Error) as err:
        verify(wire, clock=lambda: time.time() + 120)
    assert err.value.code == "InvalidSignatureException"
    assert err.value.message.startswith("Signature expired: ")


def assert_refused(wire: Wire, code: str, message_start: str, **kwargs: Any) -> SigV4Error:
    with pytest.raises(SigV4Error) as err:
        verify(wire, **kwargs)
    assert err.value.status == 403
    assert err.value.code == code
    assert err.value.message.startswith(message_start)
    return err.value


BAD_SIGNATURE = "The request signature we calculated does not match the signature you provided."


def test_tampered_body_is_refused() -> None:
    method, path, query, headers, _ = sign(f"{ENDPOINT}/", body=b'{"a": 1}')
    error = assert_refused(
        (method, path, query, headers, b'{"a": 2}'), "InvalidSignatureException", BAD_SIGNATURE
    )
    assert error.service == "lambda"


def test_tampered_path_query_method_and_header_are_refused() -> None:
    method, path, query, headers, body = sign(
        f"{ENDPOINT}/2015-03-31/functions/f?Qualifier=1", headers={"X-Amz-Invocation-Type": "Event"}
    )
    for wire in [
        (method, "/2015-03-31/functions/g", query, headers, body),
        (method, path, "Qualifier=2", headers, body),
        ("PUT", path, query, headers, body),
        (
            method,
            path,
            query,
            [(k, "RequestResponse" if k == "X-Amz-Invocation-Type" else v) for k, v in headers],
            body,
        ),
    ]:
        assert_refused(wire, "InvalidSignatureException", BAD_SIGNATURE)


def test_unsigned_header_may_change() -> None:
    method, path, query, headers, body = sign(f"{ENDPOINT}/")
    assert verify((method, path, query, [*headers, ("User-Agent", "other")], body))


def test_wrong_secret_is_refused() -> None:
    wire = sign(f"{ENDPOINT}/", secret="not-the-secret")
    assert_refused(wire, "InvalidSignatureException", BAD_SIGNATURE)


def test_unknown_access_key_is_refused() -> None:
    method, path, query, headers, body = sign(f"{ENDPOINT}/")
    with pytest.raises(SigV4Error) as err:
        SigV4Verifier(lambda _key: None).verify(method, path, query, headers, body)
    assert err.value.code == "UnrecognizedClientException"
    assert err.value.message == "The security token included in the request is invalid."


def test_missing_authentication() -> None:
    error = assert_refused(
        ("GET", "/", "", [("Host", "x")], b""),
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )
    assert error.service is None


def test_old_and_future_requests_are_refused() -> None:
    wire = sign(f"{ENDPOINT}/")
    assert verify(wire, clock=lambda: time.time() + 14 * 60)
    assert_refused(
        wire,
        "InvalidSignatureException",
        "Signature expired: ",
        clock=lambda: time.time() + 16 * 60,
    )
    assert_refused(
        wire,
        "InvalidSignatureException",
        "Signature not yet current: ",
        clock=lambda: time.time() - 16 * 60,
    )


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS AKIDEXAMPLE:signature",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/lambda/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKID/bad, SignedHeaders=host, Signature=00",
    ],
)
def test_malformed_authorization_is_incomplete(authorization: str) -> None:
    wire: Wire = ("GET", "/", "", [("Host", "x"), ("Authorization", authorization)], b"")
    assert_refused(wire, "IncompleteSignatureException", "")


def test_non_ascii_signature_is_just_wrong() -> None:
    method, path, query, headers, body = sign(f"{ENDPOINT}/")
    forged = [
        (k, re.sub("Signature=.*", "Signature=ü" * 64, v) if k == "Authorization" else v)
        for k, v in headers
    ]
    assert_refused((method, path, query, forged, body), "InvalidSignatureException", BAD_SIGNATURE)


def test_signing_keys_are_cached_and_bounded() -> None:
    verifier = SigV4Verifier(secrets, key_cache_size=2)
    for region in ["us-east-1", "us-east-1", "eu-west-1", "ap-south-1"]:
        verifier.verify(*sign(f"{ENDPOINT}/", region=region))
    assert len(verifier._keys) == 2
