"""KMS and Secrets Manager over the wire: real boto3 clients, a real server on loopback.

The server is the AwsRouter with only the two services bound, over stores on a SQLite
file of the test's own; `lamina serve` wires the same objects. The last tests read
that file's bytes to prove that no secret value or key material is stored in the clear.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config
from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.routing import Mount

from lamina.protocols.router import AwsRouter, ServiceBinding
from lamina.protocols.sigv4 import SigV4Verifier
from lamina.secrets import Envelope, KeyStore, MasterKey, SecretStore
from lamina.services.kms import KmsService
from lamina.services.secretsmanager import SecretsManagerService
from lamina.storage.database import open_database, sqlite_url

KEY = "LKIASECRETSTEST00001"
SECRET = "secrets-integration-test-secret"
ACCOUNT = "000000000000"
REGION = "us-east-1"


@dataclass
class SecretsServer:
    """The two services on a free loopback port, served from a thread of their own."""

    db_path: Path
    endpoint: str = ""
    keys: KeyStore | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> SecretsServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        # Listening before uvicorn runs: the kernel queues early clients, no polling.
        sock.listen(128)
        self.endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
        self._thread.start()
        # The stores are built inside the server's loop; this waits for that, not for a port.
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise RuntimeError("the secrets server did not start") from self._error
        return self

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # reported to start(), which re-raises it
            self._error = exc
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        engine = await open_database(
            sqlite_url(self.db_path), KeyStore.metadata, SecretStore.metadata
        )
        master = MasterKey.generate()
        self.keys = KeyStore(engine, master, ACCOUNT)
        store = SecretStore(engine, Envelope(master, self.keys), ACCOUNT)
        router = AwsRouter(
            {
                "kms": ServiceBinding("kms", KmsService(self.keys)),
                "secretsmanager": ServiceBinding("secretsmanager", SecretsManagerService(store)),
            },
            SigV4Verifier(lambda k: SECRET if k == KEY else None),
            ACCOUNT,
            REGION,
        )
        app = Starlette(routes=[Mount("/", app=router)])
        self._server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
        self._ready.set()
        try:
            await self._server.serve(sockets=[sock])
        finally:
            await engine.dispose()
            sock.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )

    def stored_bytes(self) -> bytes:
        """Everything SQLite has on disk: the database file, its WAL and shared memory."""
        return b"".join(p.read_bytes() for p in self.db_path.parent.glob(self.db_path.name + "*"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretsServer]:
    running = SecretsServer(tmp_path_factory.mktemp("secrets") / "lamina.db").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def kms(server: SecretsServer) -> Any:
    return server.client("kms")


@pytest.fixture(scope="module")
def sm(server: SecretsServer) -> Any:
    return server.client("secretsmanager")


def error_code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


# -- KMS -------------------------------------------------------------------------------


def test_create_describe_and_list_keys(kms: Any) -> None:
    meta = kms.create_key(Description="orders")["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["Enabled"] is True
    assert meta["Arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{meta['KeyId']}"
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    described = kms.describe_key(KeyId=meta["Arn"])["KeyMetadata"]
    assert described["KeyId"] == meta["KeyId"] and described["Description"] == "orders"
    listed = kms.list_keys()["Keys"]
    assert {"KeyId": meta["KeyId"], "KeyArn": meta["Arn"]} in listed
    pages = list(kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1}))
    assert sum(len(p["Keys"]) for p in pages) == len(listed)


def test_encrypt_decrypt_with_context(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    context = {"tenant": "acme"}
    out = kms.encrypt(KeyId=key_id, Plaintext=b"top secret", EncryptionContext=context)
    assert out["KeyId"].endswith(key_id) and b"top secret" not in out["CiphertextBlob"]
    # No KeyId needed: the blob names its key.
    plain = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext=context)
    assert plain["Plaintext"] == b"top secret" and plain["KeyId"].endswith(key_id)
    with pytest.raises(ClientError) as info:
        kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"tenant": "evil"})
    assert error_code(info) == "InvalidCiphertextException"
    with pytest.raises(ClientError) as info:
        kms.decrypt(CiphertextBlob=out["CiphertextBlob"])
    assert error_code(info) == "InvalidCiphertextException"


def test_aliases_and_data_keys(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/payments", TargetKeyId=key_id)
    aliases = kms.list_aliases(KeyId=key_id)["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/payments"]
    assert aliases[0]["AliasArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/payments"
    data_key = kms.generate_data_key(KeyId="alias/payments", KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    again = kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])
    assert again["Plaintext"] == data_key["Plaintext"]
    bare = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=16)
    assert "Plaintext" not in bare
    assert len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"])["Plaintext"]) == 16
    with pytest.raises(ClientError) as info:
        kms.create_alias(AliasName="alias/payments", TargetKeyId=key_id)
    assert error_code(info) == "AlreadyExistsException"


def test_re_encrypt(kms: Any) -> None:
    one = kms.create_key()["KeyMetadata"]["KeyId"]
    two = kms.create_key()["KeyMetadata"]["Arn"]
    blob = kms.encrypt(KeyId=one, Plaintext=b"move me")["CiphertextBlob"]
    moved = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=two)
    assert moved["KeyId"] == two and moved["SourceKeyId"].endswith(one)
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"move me"


def test_disabled_pending_and_unknown_keys(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError) as info:
        kms.decrypt(CiphertextBlob=blob)
    assert error_code(info) == "DisabledException"
    kms.enable_key(KeyId=key_id)
    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["DeletionDate"] is not None
    with pytest.raises(ClientError) as info:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert error_code(info) == "KMSInvalidStateException"
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(ClientError) as info:
        kms.describe_key(KeyId="11111111-2222-3333-4444-555555555555")
    assert error_code(info) == "NotFoundException"
    with pytest.raises(ClientError) as info:
        kms.encrypt(KeyId="alias/nope", Plaintext=b"x")
    assert error_code(info) == "NotFoundException"


def test_unknown_operation_is_refused(kms: Any) -> None:
    with pytest.raises(ClientError) as info:
        kms.sign(KeyId="alias/x", Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert error_code(info) == "UnknownOperationException"


# -- Secrets Manager ---------------------------------------------------------------------


def test_secret_versions(sm: Any) -> None:
    created = sm.create_secret(Name="app/db", SecretString="pw-one", Description="db")
    arn = created["ARN"]
    prefix = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app/db-"
    assert arn.startswith(prefix) and len(arn) == len(prefix) + 6
    assert sm.get_secret_value(SecretId="app/db")["SecretString"] == "pw-one"
    second = sm.put_secret_value(SecretId=arn, SecretString="pw-two")
    assert second["VersionStages"] == ["AWSCURRENT"]
    current = sm.get_secret_value(SecretId=arn)
    assert current["SecretString"] == "pw-two" and current["VersionId"] == second["VersionId"]
    previous = sm.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")
    assert previous["SecretString"] == "pw-one" and previous["VersionId"] == created["VersionId"]
    by_id = sm.get_secret_value(SecretId=arn, VersionId=created["VersionId"])
    assert by_id["VersionStages"] == ["AWSPREVIOUS"]
    described = sm.describe_secret(SecretId="app/db")
    assert described["VersionIdsToStages"] == {
        created["VersionId"]: ["AWSPREVIOUS"],
        second["VersionId"]: ["AWSCURRENT"],
    }
    assert described["Description"] == "db" and "DeletedDate" not in described
    sm.update_secret(SecretId="app/db", SecretString="pw-three", Description="rotated")
    assert sm.get_secret_value(SecretId="app/db")["SecretString"] == "pw-three"
    assert sm.describe_secret(SecretId="app/db")["Description"] == "rotated"


def test_binary_secret_with_a_customer_key(sm: Any, kms: Any) -> None:
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    sm.create_secret(Name="app/cert", SecretBinary=b"\x00\x01binary", KmsKeyId=key_arn)
    assert sm.get_secret_value(SecretId="app/cert")["SecretBinary"] == b"\x00\x01binary"
    assert sm.describe_secret(SecretId="app/cert")["KmsKeyId"] == key_arn
    kms.disable_key(KeyId=key_arn)
    with pytest.raises(ClientError) as info:
        sm.get_secret_value(SecretId="app/cert")
    assert error_code(info) == "DecryptionFailure"
    kms.enable_key(KeyId=key_arn)
    assert sm.get_secret_value(SecretId="app/cert")["SecretBinary"] == b"\x00\x01binary"


def test_deletion_and_restore(sm: Any) -> None:
    sm.create_secret(Name="app/temp", SecretString="temp-value")
    deleted = sm.delete_secret(SecretId="app/temp", RecoveryWindowInDays=7)
    assert deleted["Name"] == "app/temp"
    window = deleted["DeletionDate"].timestamp() - time.time()
    assert 6.9 * 86_400 < window <= 7 * 86_400
    with pytest.raises(ClientError) as info:
        sm.get_secret_value(SecretId="app/temp")
    assert error_code(info) == "InvalidRequestException"
    assert info.value.response["Error"]["Message"] == (
        "You can't perform this operation on the secret because it was marked for deletion."
    )
    assert "DeletedDate" in sm.describe_secret(SecretId="app/temp")
    names = [s["Name"] for s in sm.list_secrets()["SecretList"]]
    assert "app/temp" not in names
    names = [s["Name"] for s in sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]]
    assert "app/temp" in names
    sm.restore_secret(SecretId="app/temp")
    assert sm.get_secret_value(SecretId="app/temp")["SecretString"] == "temp-value"
    sm.delete_secret(SecretId="app/temp", ForceDeleteWithoutRecovery=True)
    with pytest.raises(ClientError) as info:
        sm.describe_secret(SecretId="app/temp")
    assert error_code(info) == "ResourceNotFoundException"


def test_secrets_manager_errors(sm: Any) -> None:
    sm.create_secret(Name="app/unique", SecretString="v")
    with pytest.raises(ClientError) as info:
        sm.create_secret(Name="app/unique", SecretString="v")
    assert error_code(info) == "ResourceExistsException"
    with pytest.raises(ClientError) as info:
        sm.get_secret_value(SecretId="app/missing")
    assert error_code(info) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as info:
        sm.delete_secret(SecretId="app/unique", RecoveryWindowInDays=3)
    assert error_code(info) == "InvalidParameterException"
    with pytest.raises(ClientError) as info:
        sm.get_secret_value(SecretId="app/unique", VersionStage="AWSPENDING")
    assert error_code(info) == "ResourceNotFoundException"


def test_list_secrets_filters_and_pages(sm: Any) -> None:
    for name in ("list/a", "list/b", "list/c"):
        sm.create_secret(Name=name, SecretString="v", Tags=[{"Key": "group", "Value": "list"}])
    found = sm.list_secrets(Filters=[{"Key": "name", "Values": ["list/"]}])["SecretList"]
    assert [s["Name"] for s in found] == ["list/a", "list/b", "list/c"]
    assert found[0]["Tags"] == [{"Key": "group", "Value": "list"}]
    assert list(found[0]["SecretVersionsToStages"].values()) == [["AWSCURRENT"]]
    pages = sm.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "tag-value", "Values": ["list"]}], PaginationConfig={"PageSize": 2}
    )
    assert [len(p["SecretList"]) for p in pages] == [2, 1]


def test_random_password(sm: Any) -> None:
    password = sm.get_random_password(PasswordLength=40, ExcludePunctuation=True)
    assert len(password["RandomPassword"]) == 40 and password["RandomPassword"].isalnum()


# -- at rest -----------------------------------------------------------------------------


def test_no_plaintext_secret_or_key_material_on_disk(
    server: SecretsServer, sm: Any, kms: Any
) -> None:
    values = [b"rest-check-string-\xe2\x98\x83", b"rest-check-binary-\x00\xff"]
    sm.create_secret(Name="rest/string", SecretString=values[0].decode())
    sm.put_secret_value(SecretId="rest/string", SecretString="rest-check-second-version")
    sm.create_secret(Name="rest/binary", SecretBinary=values[1])
    data_key = kms.generate_data_key(
        KeyId=kms.create_key()["KeyMetadata"]["KeyId"], KeySpec="AES_256"
    )
    stored = server.stored_bytes()
    assert b"rest/string" in stored  # the file is the right one: names are metadata
    for value in [*values, b"rest-check-second-version", data_key["Plaintext"]]:
        assert value not in stored
        assert base64.b64encode(value) not in stored
    assert server.keys is not None
    materials = list(server.keys._materials.values())  # the store's in-memory keys
    assert materials
    for material in materials:
        assert material not in stored and base64.b64encode(material) not in stored
