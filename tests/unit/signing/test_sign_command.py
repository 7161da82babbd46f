"""`lamina sign` and `lamina audit` as clients: what they send and what they make of it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.unit.signing.test_package_signature import FILES, make_zip

from lamina.cli.audit import fetch_audit
from lamina.cli.connection import CliError, Connection
from lamina.cli.sign import sign_package
from lamina.signing import keys
from lamina.signing.package_signature import PAYLOAD_FORMAT, Envelope, Statement
from lamina.signing.profiles import ProfileStatus, SigningProfile
from lamina.signing.verification import Finding, verify_package

ARN = "arn:aws:signer:us-east-1:000000000000:/signing-profiles/prod/v1"


class FakeSigner:
    """Signer's SignPayload, with a real key: signs the digest it is sent."""

    def __init__(self) -> None:
        self.private, self.public = keys.generate_key_pair()
        self.calls: list[dict[str, Any]] = []

    def sign_payload(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        raw = Statement(
            code_digest=kwargs["payload"].hex(), profile_name=kwargs["profileName"],
            profile_version="v1", profile_version_arn=ARN, platform_id=keys.PLATFORM_ID,
            job_id="job", signed_at=100, expires_at=200,
        ).encode()  # fmt: skip
        return {"signature": Envelope(raw, keys.sign(self.private, raw)).encode()}


def test_sign_sends_only_the_digest_and_the_result_verifies() -> None:
    signer = FakeSigner()
    data = make_zip(FILES)
    signed, envelope = sign_package(signer, data, "prod")
    (sent,) = signer.calls
    assert sent["payloadFormat"] == PAYLOAD_FORMAT and len(sent["payload"]) == 48
    assert envelope.statement.profile_version_arn == ARN
    profile = SigningProfile(
        name="prod", version="v1", version_arn=ARN, platform_id=keys.PLATFORM_ID,
        validity_value=1, validity_type="DAYS", status=ProfileStatus.ACTIVE,
        status_reason="", created_at=0.0, public_key=signer.public,
    )  # fmt: skip
    verdict = verify_package(signed, {ARN: profile}.get, (ARN,), 150.0)
    assert verdict.finding is Finding.VALID


def test_sign_refuses_what_is_not_a_zip() -> None:
    with pytest.raises(CliError, match="not a readable zip"):
        sign_package(FakeSigner(), b"not a zip", "prod")


def test_fetch_audit_sends_the_root_secret_and_filters() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"events": [{"operation": "X"}], "count": 1})

    connection = Connection("http://lamina", "AKID", "root-secret")
    events = fetch_audit(connection, {"since": "5", "denied": "1"}, httpx.MockTransport(answer))
    assert events == [{"operation": "X"}]
    (request,) = seen
    assert request.url.path == "/_lamina/audit"
    assert dict(request.url.params) == {"since": "5", "denied": "1"}
    assert request.headers["authorization"] == "Bearer root-secret"
