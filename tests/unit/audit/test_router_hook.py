"""The router tells its observer of every call that reached a service, however it ended."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import botocore.session
import pytest
from tests.unit.protocols.test_aws_router import AKID, Recorder, call, lambda_answers, signed

from lamina.errors import LaminaError
from lamina.protocols.context import RequestContext
from lamina.protocols.router import AwsRouter, ServiceBinding
from lamina.protocols.sigv4 import SigV4Verifier

Seen = list[tuple[str, dict[str, Any], str | None]]


@pytest.fixture(scope="module")
def session() -> Any:
    return botocore.session.get_session()


def router(session: Any, seen: Seen, *, failing: bool = False) -> AwsRouter:
    def observe(ctx: RequestContext, params: Mapping[str, Any], error: LaminaError | None) -> None:
        if failing:
            raise RuntimeError("observer bug")
        seen.append((ctx.operation, dict(params), error.code if error else None))

    return AwsRouter(
        {"lambda": ServiceBinding("lambda", Recorder(lambda_answers))},
        SigV4Verifier({AKID: "router-secret"}.get, time.time),
        "123456789012",
        "us-east-1",
        session=session,
        observer=observe,
    )


async def test_success_service_error_and_crash_are_observed(session: Any) -> None:
    seen: Seen = []
    aws = router(session, seen)
    model = session.get_service_model("lambda")
    for name in ("ok", "missing", "crash"):
        await call(aws, signed(model, "Invoke", {"FunctionName": name, "Payload": b"{}"}))
    assert [(op, p["FunctionName"], code) for op, p, code in seen] == [
        ("Invoke", "ok", None),
        ("Invoke", "missing", "ResourceNotFoundException"),
        ("Invoke", "crash", "ServiceException"),
    ]


async def test_unsigned_requests_are_not_observed(session: Any) -> None:
    seen: Seen = []
    model = session.get_service_model("lambda")
    response = await call(
        router(session, seen), signed(model, "Invoke", {"FunctionName": "f"}, secret="wrong")
    )
    assert response.status == 403 and seen == []


async def test_a_failing_observer_never_fails_the_call(session: Any) -> None:
    model = session.get_service_model("lambda")
    aws = router(session, [], failing=True)
    response = await call(aws, signed(model, "Invoke", {"FunctionName": "ok", "Payload": b"x"}))
    assert response.status == 200
