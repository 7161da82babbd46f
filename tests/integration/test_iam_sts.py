"""IAM and STS over the wire: a real uvicorn server on loopback (AwsRouter with the
IAM and STS services and the session-token-aware verifier), driven by boto3."""

from __future__ import annotations

import asyncio
import json
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

from lamina.iam import IamDirectory, IamStore, RootKey
from lamina.protocols.router import AwsRouter, ServiceBinding
from lamina.services.iam import IamService, principal_lookup
from lamina.services.sts import SessionTokenVerifier, StsService
from lamina.storage.database import open_database, sqlite_url

ACCOUNT = "000000000000"
ROOT = RootKey("LKIAIAMTESTROOT00001", "iam-test-root-secret")
TRUST_ACCOUNT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
}


@dataclass
class IamServer:
    """The server runs its own event loop in a thread; the test moves its IAM clock."""

    db: Path
    clock_offset: float = 0.0
    sock: socket.socket = field(default_factory=socket.socket)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def now(self) -> float:
        return time.time() + self.clock_offset

    def start(self) -> IamServer:
        # Listening before the thread starts: clients connect as soon as we return and
        # the kernel holds them until the server accepts; no readiness polling needed.
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        loaded = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            try:
                engine = await open_database(sqlite_url(self.db), IamStore.metadata)
                directory = IamDirectory(IamStore(engine), ROOT, ACCOUNT, clock=self.now)
                await directory.start()
                principal_of = principal_lookup(directory)
                router = AwsRouter(
                    {
                        "iam": ServiceBinding("iam", IamService(directory, principal_of)),
                        "sts": ServiceBinding("sts", StsService(directory, principal_of)),
                    },
                    SessionTokenVerifier(directory),
                    ACCOUNT,
                    "us-east-1",
                )
                app = Starlette(routes=[Mount("/", app=router)])
                config = uvicorn.Config(app, log_level="warning", lifespan="off")
                self._server = uvicorn.Server(config)
            except BaseException as error:
                failure.append(error)
                raise
            finally:
                loaded.set()
            try:
                await self._server.serve(sockets=[self.sock])
            finally:
                await engine.dispose()

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
        self._thread.start()
        loaded.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.sock.close()

    def client(self, service: str, key: str, secret: str, token: str | None = None) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=Config(retries={"max_attempts": 0}),
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IamServer]:
    running = IamServer(tmp_path / "iam.db").start()
    yield running
    running.stop()


@pytest.fixture
def root_iam(server: IamServer) -> Any:
    return server.client("iam", ROOT.access_key_id, ROOT.secret_access_key)


@pytest.fixture
def root_sts(server: IamServer) -> Any:
    return server.client("sts", ROOT.access_key_id, ROOT.secret_access_key)


def code_and_status(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_root_identity(root_sts: Any) -> None:
    me = root_sts.get_caller_identity()
    assert (me["Account"], me["Arn"], me["UserId"]) == (
        ACCOUNT,
        f"arn:aws:iam::{ACCOUNT}:root",
        ACCOUNT,
    )


def test_a_new_users_key_signs_as_that_user(server: IamServer, root_iam: Any) -> None:
    user = root_iam.create_user(UserName="bob")["User"]
    key = root_iam.create_access_key(UserName="bob")["AccessKey"]
    bob_sts = server.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
    me = bob_sts.get_caller_identity()
    assert (me["Arn"], me["UserId"], me["Account"]) == (user["Arn"], user["UserId"], ACCOUNT)

    bob_iam = server.client("iam", key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ClientError) as caught:
        bob_iam.create_user(UserName="eve")
    assert code_and_status(caught) == ("AccessDenied", 403)
    assert "is not authorized to perform: iam:CreateUser" in str(caught.value)
    root_iam.put_user_policy(
        UserName="bob",
        PolicyName="users",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":"iam:*User","Resource":"*"}]}',
    )
    assert bob_iam.create_user(UserName="eve")["User"]["UserName"] == "eve"

    root_iam.delete_access_key(UserName="bob", AccessKeyId=key["AccessKeyId"])
    with pytest.raises(ClientError) as caught:
        bob_sts.get_caller_identity()
    assert code_and_status(caught)[1] == 403


def test_roles_round_trip_policy_documents(root_iam: Any) -> None:
    role = root_iam.create_role(RoleName="exec", AssumeRolePolicyDocument=_json(TRUST_ACCOUNT))
    assert role["Role"]["AssumeRolePolicyDocument"] == TRUST_ACCOUNT  # boto3 decodes it
    root_iam.put_role_policy(RoleName="exec", PolicyName="p", PolicyDocument=_json(_invoke()))
    assert root_iam.get_role_policy(RoleName="exec", PolicyName="p")["PolicyDocument"] == _invoke()
    arn = root_iam.create_policy(PolicyName="inv", PolicyDocument=_json(_invoke()))["Policy"]["Arn"]
    root_iam.attach_role_policy(RoleName="exec", PolicyArn=arn)
    attached = root_iam.list_attached_role_policies(RoleName="exec")["AttachedPolicies"]
    assert attached == [{"PolicyName": "inv", "PolicyArn": arn}]
    with pytest.raises(ClientError) as caught:
        root_iam.get_role(RoleName="nope")
    assert code_and_status(caught) == ("NoSuchEntity", 404)
    with pytest.raises(ClientError) as caught:
        root_iam.create_role(RoleName="exec", AssumeRolePolicyDocument=_json(TRUST_ACCOUNT))
    assert code_and_status(caught) == ("EntityAlreadyExists", 409)
    with pytest.raises(ClientError) as caught:
        root_iam.create_role(RoleName="bad", AssumeRolePolicyDocument="{")
    assert code_and_status(caught) == ("MalformedPolicyDocument", 400)


def test_assumed_role_credentials(server: IamServer, root_iam: Any, root_sts: Any) -> None:
    role = root_iam.create_role(RoleName="worker", AssumeRolePolicyDocument=_json(TRUST_ACCOUNT))
    out = root_sts.assume_role(
        RoleArn=role["Role"]["Arn"], RoleSessionName="job-1", DurationSeconds=900
    )
    creds = out["Credentials"]
    session = server.client(
        "sts", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    )
    me = session.get_caller_identity()
    assert me["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/job-1"
    assert me["Arn"] == out["AssumedRoleUser"]["Arn"]

    for token in (None, "wrong-token", creds["SessionToken"][:-1]):
        forged = server.client("sts", creds["AccessKeyId"], creds["SecretAccessKey"], token)
        with pytest.raises(ClientError) as caught:
            forged.get_caller_identity()
        assert code_and_status(caught)[1] == 403
    # A long-term key presented with a session token is refused too.
    with pytest.raises(ClientError) as caught:
        server.client(
            "sts", ROOT.access_key_id, ROOT.secret_access_key, creds["SessionToken"]
        ).get_caller_identity()
    assert code_and_status(caught)[1] == 403

    server.clock_offset = 901  # past the session's 900 seconds
    with pytest.raises(ClientError) as caught:
        session.get_caller_identity()
    assert code_and_status(caught) == ("ExpiredToken", 403)
    assert "The security token included in the request is expired" in str(caught.value)


def test_state_survives_a_restart(tmp_path: Path) -> None:
    first = IamServer(tmp_path / "iam.db").start()
    try:
        iam = first.client("iam", ROOT.access_key_id, ROOT.secret_access_key)
        iam.create_user(UserName="bob")
        key = iam.create_access_key(UserName="bob")["AccessKey"]
    finally:
        first.stop()
    second = IamServer(tmp_path / "iam.db").start()
    try:
        sts = second.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
        assert sts.get_caller_identity()["Arn"].endswith(":user/bob")
    finally:
        second.stop()


def _invoke() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}],
    }


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document)
