"""The Lambda control plane through boto3: functions, versions, aliases, settings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.support import ROLE, create_function, make_zip, unique_name

V1 = "def handler(event, context):\n    return 'v1'\n"
V2 = "def handler(event, context):\n    return 'v2'\n"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def _invoke(client: Any, name: str, **kwargs: Any) -> tuple[Any, Any]:
    response = client.invoke(FunctionName=name, Payload=b"{}", **kwargs)
    return response, json.loads(response["Payload"].read())


def _code(client: Any, name: str, **kwargs: Any) -> dict[str, Any]:
    return client.get_function_configuration(FunctionName=name, **kwargs)


def test_create_get_list_update_delete(lambda_client: Any) -> None:
    name = unique_name()
    created = lambda_client.create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": V1})}, Description="first", Timeout=5, MemorySize=256,
        Environment={"Variables": {"A": "1"}},
    )  # fmt: skip
    assert created["FunctionArn"] == ARN + name
    assert created["State"] in ("Pending", "Active")
    assert created["Version"] == "$LATEST"
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=name)
    got = lambda_client.get_function(FunctionName=name)
    assert got["Configuration"]["State"] == "Active"
    assert got["Configuration"]["LastUpdateStatus"] == "Successful"
    assert got["Configuration"]["Environment"] == {"Variables": {"A": "1"}}
    assert got["Configuration"]["MemorySize"] == 256
    assert got["Code"]["Location"].startswith("http://127.0.0.1")
    import httpx

    downloaded = httpx.get(got["Code"]["Location"])
    assert downloaded.status_code == 200 and downloaded.content[:2] == b"PK"

    updated = lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": V2}))
    assert updated["CodeSha256"] != created["CodeSha256"]
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert _invoke(lambda_client, name)[1] == "v2"

    configured = lambda_client.update_function_configuration(
        FunctionName=name, Timeout=7, Description="second", Environment={"Variables": {"B": "2"}}
    )
    assert configured["Timeout"] == 7
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
    config = _code(lambda_client, name)
    assert (config["Timeout"], config["Description"]) == (7, "second")
    assert config["Environment"]["Variables"] == {"B": "2"}

    lambda_client.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as err:
        lambda_client.get_function(FunctionName=name)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_list_functions_paginates(lambda_client: Any) -> None:
    prefix = unique_name("page")
    names = {create_function(lambda_client, V1, name=f"{prefix}-{i}", wait=False) for i in range(5)}
    pages = lambda_client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2})
    seen: list[str] = []
    page_count = 0
    for page in pages:
        page_count += 1
        assert len(page["Functions"]) <= 2
        seen.extend(f["FunctionName"] for f in page["Functions"])
    assert names <= set(seen)
    assert len(seen) == len(set(seen))
    assert page_count >= 3
    first = lambda_client.list_functions(MaxItems=1)
    assert len(first["Functions"]) == 1 and "NextMarker" in first


def test_versions_aliases_and_qualified_invokes(lambda_client: Any) -> None:
    name = create_function(lambda_client, V1)
    v1 = lambda_client.publish_version(FunctionName=name, Description="one")
    assert v1["Version"] == "1"
    assert v1["FunctionArn"] == f"{ARN}{name}:1"
    # publishing an unchanged $LATEST returns the same version
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"
    lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": V2}), Publish=True)
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
    versions = [v["Version"] for v in lambda_client.list_versions_by_function(FunctionName=name)["Versions"]]
    assert versions == ["$LATEST", "1", "2"]

    response, body = _invoke(lambda_client, name, Qualifier="1")
    assert (body, response["ExecutedVersion"]) == ("v1", "1")
    response, body = _invoke(lambda_client, f"{name}:2")
    assert (body, response["ExecutedVersion"]) == ("v2", "2")

    alias = lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    assert alias["AliasArn"] == f"{ARN}{name}:live"
    response, body = _invoke(lambda_client, name, Qualifier="live")
    assert (body, response["ExecutedVersion"]) == ("v1", "1")
    assert lambda_client.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    with pytest.raises(ClientError) as err:
        lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    assert err.value.response["Error"]["Code"] == "ResourceConflictException"

    updated = lambda_client.update_alias(
        FunctionName=name, Name="live", FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )  # fmt: skip
    assert updated["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.5}}
    executed = {_invoke(lambda_client, name, Qualifier="live")[0]["ExecutedVersion"] for _ in range(40)}
    assert executed == {"1", "2"}  # 40 draws at 50/50 miss a side with p = 2^-39

    lambda_client.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RoutingConfig={"AdditionalVersionWeights": {}})
    assert _invoke(lambda_client, name, Qualifier="live")[0]["ExecutedVersion"] == "2"
    aliases = lambda_client.list_aliases(FunctionName=name)["Aliases"]
    assert [a["Name"] for a in aliases] == ["live"]
    with pytest.raises(ClientError) as err:
        lambda_client.delete_function(FunctionName=name, Qualifier="2")
    assert err.value.response["Error"]["Code"] == "ResourceConflictException"
    lambda_client.delete_alias(FunctionName=name, Name="live")
    assert lambda_client.list_aliases(FunctionName=name)["Aliases"] == []
    lambda_client.delete_function(FunctionName=name, Qualifier="2")
    with pytest.raises(ClientError) as err:
        _invoke(lambda_client, name, Qualifier="2")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_concurrency_and_event_invoke_config(lambda_client: Any) -> None:
    name = create_function(lambda_client, V1)
    assert lambda_client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") is None
    assert lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)["ReservedConcurrentExecutions"] == 5
    assert lambda_client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    assert lambda_client.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    lambda_client.delete_function_concurrency(FunctionName=name)
    assert lambda_client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") is None
    with pytest.raises(ClientError) as err:
        lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=950)
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"

    put = lambda_client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=1, MaximumEventAgeInSeconds=120
    )
    assert (put["MaximumRetryAttempts"], put["MaximumEventAgeInSeconds"]) == (1, 120)
    assert put["FunctionArn"] == f"{ARN}{name}:$LATEST"
    got = lambda_client.get_function_event_invoke_config(FunctionName=name)
    assert got["MaximumRetryAttempts"] == 1
    lambda_client.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(ClientError) as err:
        lambda_client.get_function_event_invoke_config(FunctionName=name)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=5)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_functions_addressed_by_arn(lambda_client: Any) -> None:
    name = create_function(lambda_client, V1)
    assert _code(lambda_client, ARN + name)["FunctionName"] == name
    assert _code(lambda_client, f"000000000000:function:{name}")["FunctionName"] == name
    assert _invoke(lambda_client, ARN + name)[1] == "v1"
