"""Code signing against a real `lamina serve`: profiles with real keys, `lamina sign`,
and code-signing configs that refuse unsigned, tampered, untrusted and revoked code."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.support import (
    LAMINA,
    ROLE,
    LaminaServer,
    log_messages,
    make_zip,
    unique_name,
)

CODE = "def handler(event, context):\n    return {'version': 1}\n"
CODE_V2 = "def handler(event, context):\n    return {'version': 2}\n"


def profile_name() -> str:
    return unique_name("prof").replace("-", "_")


def sign(server: LaminaServer, data: bytes, profile: str, tmp_path: Path) -> bytes:
    """Sign with the real CLI, as a user would."""
    package = tmp_path / f"{unique_name('pkg')}.zip"
    package.write_bytes(data)
    out = tmp_path / f"{package.stem}.signed.zip"
    result = subprocess.run(
        [LAMINA, "sign", str(package), "--profile", profile, "--out", str(out)],
        env=server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "signed" in result.stdout and "/signing-profiles/" in result.stdout
    return out.read_bytes()


def tamper(signed: bytes, name: str = "app.py") -> bytes:
    """The signed zip with one byte of `name` flipped, its signature entry kept."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(signed)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == name:
                content = content[:-2] + bytes([content[-2] ^ 0x01]) + content[-1:]
            target.writestr(info, content)
    return out.getvalue()


def new_profile(server: LaminaServer) -> tuple[str, str]:
    name = profile_name()
    out = server.client("signer").put_signing_profile(
        profileName=name, platformId="AWSLambda-SHA384-ECDSA"
    )
    return name, str(out["profileVersionArn"])


def new_config(server: LaminaServer, allowed: list[str], policy: str) -> str:
    out = server.client("lambda").create_code_signing_config(
        Description="test",
        AllowedPublishers={"SigningProfileVersionArns": allowed},
        CodeSigningPolicies={"UntrustedArtifactOnDeployment": policy},
    )
    return str(out["CodeSigningConfig"]["CodeSigningConfigArn"])


def create(client: Any, name: str, zip_file: bytes, config: str | None = None) -> dict[str, Any]:
    extra = {"CodeSigningConfigArn": config} if config else {}
    out: dict[str, Any] = client.create_function(
        FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
        Code={"ZipFile": zip_file}, **extra,
    )  # fmt: skip
    return out


def refused(call: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    error = caught.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def invoke(client: Any, name: str) -> Any:
    client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return json.loads(client.invoke(FunctionName=name)["Payload"].read())


def test_enforce_refuses_unsigned_and_tampered_and_accepts_signed(
    lamina_server: LaminaServer, lambda_client: Any, tmp_path: Path
) -> None:
    profile, version_arn = new_profile(lamina_server)
    config = new_config(lamina_server, [version_arn], "Enforce")
    assert config.split(":code-signing-config:")[1].startswith("csc-")
    unsigned = make_zip({"app.py": CODE})
    signed = sign(lamina_server, unsigned, profile, tmp_path)
    name = unique_name()

    code, message = refused(create, lambda_client, name, unsigned, config)
    assert code == "CodeVerificationFailedException" and "not signed" in message
    code, message = refused(create, lambda_client, name, tamper(signed), config)
    assert code == "InvalidCodeSignatureException" and "modified after it was signed" in message
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=name)  # nothing was created

    create(lambda_client, name, signed, config)
    assert invoke(lambda_client, name) == {"version": 1}
    bound = lambda_client.get_function_code_signing_config(FunctionName=name)
    assert bound["CodeSigningConfigArn"] == config
    listed = lambda_client.list_functions_by_code_signing_config(CodeSigningConfigArn=config)
    assert listed["FunctionArns"] == [f"arn:aws:lambda:us-east-1:000000000000:function:{name}"]

    code, _ = refused(lambda_client.update_function_code, FunctionName=name, ZipFile=unsigned)
    assert code == "CodeVerificationFailedException"
    v2 = make_zip({"app.py": CODE_V2})
    code, _ = refused(
        lambda_client.update_function_code,
        FunctionName=name,
        ZipFile=tamper(sign(lamina_server, v2, profile, tmp_path)),
    )
    assert code == "InvalidCodeSignatureException"
    lambda_client.update_function_code(
        FunctionName=name, ZipFile=sign(lamina_server, v2, profile, tmp_path)
    )
    lambda_client.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    assert invoke(lambda_client, name) == {"version": 2}


def test_a_flipped_byte_in_the_zip_itself_is_refused(
    lamina_server: LaminaServer, lambda_client: Any, tmp_path: Path
) -> None:
    profile, version_arn = new_profile(lamina_server)
    config = new_config(lamina_server, [version_arn], "Enforce")
    signed = bytearray(sign(lamina_server, make_zip({"app.py": CODE * 50}), profile, tmp_path))
    start = signed.index(b"app.py") + len(b"app.py")  # the local header's name, then data
    signed[start + 10] ^= 0x01
    code, _ = refused(create, lambda_client, unique_name(), bytes(signed), config)
    # The zip's own CRC check (package validation) or the signature check catches it.
    assert code in ("InvalidCodeSignatureException", "InvalidParameterValueException")


def test_a_profile_the_config_does_not_allow_is_refused(
    lamina_server: LaminaServer, lambda_client: Any, tmp_path: Path
) -> None:
    _, allowed = new_profile(lamina_server)
    other, _ = new_profile(lamina_server)
    config = new_config(lamina_server, [allowed], "Enforce")
    signed = sign(lamina_server, make_zip({"app.py": CODE}), other, tmp_path)
    code, message = refused(create, lambda_client, unique_name(), signed, config)
    assert code == "CodeVerificationFailedException" and "not an allowed publisher" in message


def test_a_revoked_profile_is_refused(
    lamina_server: LaminaServer, lambda_client: Any, tmp_path: Path
) -> None:
    signer = lamina_server.client("signer")
    profile, version_arn = new_profile(lamina_server)
    config = new_config(lamina_server, [version_arn], "Enforce")
    signed = sign(lamina_server, make_zip({"app.py": CODE}), profile, tmp_path)
    version = version_arn.rsplit("/", 1)[1]
    signer.revoke_signing_profile(
        profileName=profile, profileVersion=version, reason="key leaked",
        effectiveTime=datetime.now(UTC) - timedelta(minutes=5),
    )  # fmt: skip
    described = signer.get_signing_profile(profileName=profile)
    assert described["status"] == "Revoked" and described["statusReason"] == "key leaked"
    assert described["revocationRecord"]["revokedBy"] == "arn:aws:iam::000000000000:root"
    code, message = refused(create, lambda_client, unique_name(), signed, config)
    assert code == "CodeVerificationFailedException" and "revoked" in message
    code, _ = refused(
        signer.sign_payload, profileName=profile, payload=b"\0" * 48,
        payloadFormat="application/vnd.lamina.code-manifest-sha384",
    )  # fmt: skip
    assert code == "ValidationException"


def test_warn_accepts_and_logs_but_integrity_still_refuses(
    lamina_server: LaminaServer, lambda_client: Any, tmp_path: Path
) -> None:
    profile, version_arn = new_profile(lamina_server)
    config = new_config(lamina_server, [version_arn], "Warn")
    name = unique_name()
    create(lambda_client, name, make_zip({"app.py": CODE}), config)
    assert invoke(lambda_client, name) == {"version": 1}
    messages = log_messages(
        lamina_server, name, until=lambda m: any("code signing" in x for x in m)
    )
    assert any("failed verification (unsigned)" in m and "Warn mode" in m for m in messages)
    signed = sign(lamina_server, make_zip({"app.py": CODE_V2}), profile, tmp_path)
    code, _ = refused(lambda_client.update_function_code, FunctionName=name, ZipFile=tamper(signed))
    assert (
        code == "InvalidCodeSignatureException"
    )  # Lambda blocks a failed integrity check in Warn too


def test_config_lifecycle(lamina_server: LaminaServer, lambda_client: Any) -> None:
    _, version_arn = new_profile(lamina_server)
    config = new_config(lamina_server, [version_arn], "Warn")
    got = lambda_client.get_code_signing_config(CodeSigningConfigArn=config)["CodeSigningConfig"]
    assert got["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Warn"}
    assert got["AllowedPublishers"] == {"SigningProfileVersionArns": [version_arn]}
    listed = lambda_client.list_code_signing_configs()["CodeSigningConfigs"]
    assert config in [c["CodeSigningConfigArn"] for c in listed]
    updated = lambda_client.update_code_signing_config(
        CodeSigningConfigArn=config,
        CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Enforce"},
    )["CodeSigningConfig"]
    assert updated["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"] == "Enforce"

    name = unique_name()
    create(lambda_client, name, make_zip({"app.py": CODE}))  # no config: anything deploys
    lambda_client.put_function_code_signing_config(CodeSigningConfigArn=config, FunctionName=name)
    code, _ = refused(lambda_client.delete_code_signing_config, CodeSigningConfigArn=config)
    assert code == "ResourceConflictException"
    code, _ = refused(
        lambda_client.update_function_code, FunctionName=name, ZipFile=make_zip({"app.py": CODE_V2})
    )
    assert code == "CodeVerificationFailedException"
    lambda_client.delete_function_code_signing_config(FunctionName=name)
    assert (
        lambda_client.get_function_code_signing_config(FunctionName=name)["CodeSigningConfigArn"]
        == ""
    )
    lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": CODE_V2}))
    lambda_client.delete_code_signing_config(CodeSigningConfigArn=config)
    code, _ = refused(lambda_client.get_code_signing_config, CodeSigningConfigArn=config)
    assert code == "ResourceNotFoundException"
    code, _ = refused(
        lambda_client.put_function_code_signing_config,
        CodeSigningConfigArn=config,
        FunctionName=name,
    )
    assert code == "CodeSigningConfigNotFoundException"
    code, _ = refused(create, lambda_client, unique_name(), make_zip({"app.py": CODE}), config)
    assert code == "CodeSigningConfigNotFoundException"
    code, _ = refused(
        lambda_client.create_code_signing_config,
        AllowedPublishers={"SigningProfileVersionArns": ["not-an-arn"]},
    )
    assert code == "InvalidParameterValueException"


def test_signing_needs_permission(lamina_server: LaminaServer, tmp_path: Path) -> None:
    profile, _ = new_profile(lamina_server)
    iam = lamina_server.client("iam")
    user = unique_name("signer-user")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    signer = lamina_server.client(
        "signer", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"]
    )
    code, message = refused(
        signer.sign_payload, profileName=profile, payload=b"\0" * 48,
        payloadFormat="application/vnd.lamina.code-manifest-sha384",
    )  # fmt: skip
    assert code == "AccessDeniedException" and "signer:SignPayload" in message


def test_profiles_configs_and_signatures_survive_a_restart(
    fresh_server: LaminaServer, tmp_path: Path
) -> None:
    fresh_server.start()
    profile, version_arn = new_profile(fresh_server)
    config = new_config(fresh_server, [version_arn], "Enforce")
    signed = sign(fresh_server, make_zip({"app.py": CODE}), profile, tmp_path)
    fresh_server.stop()
    fresh_server.start()
    client = fresh_server.client("lambda")
    described = fresh_server.client("signer").get_signing_profile(profileName=profile)
    assert described["profileVersionArn"] == version_arn and described["status"] == "Active"
    name = unique_name()
    code, _ = refused(create, client, name, make_zip({"app.py": CODE}), config)
    assert code == "CodeVerificationFailedException"
    create(client, name, signed, config)
    assert invoke(client, name) == {"version": 1}
    db = (fresh_server.data_dir / "lamina.db").read_bytes()
    assert b"BEGIN PRIVATE KEY" not in db
