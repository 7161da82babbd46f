"""Render lamina's function models as the Lambda API's output shapes."""

from __future__ import annotations

import base64
from typing import Any

from lamina.functions.model import Alias, EventInvokeConfig, FunctionConfig


def code_sha256_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode() if hex_digest else ""


class Shapes:
    def __init__(self, region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id

    def arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def configuration(self, c: FunctionConfig) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FunctionName": c.name,
            "FunctionArn": self.arn(c.name, c.version if c.version != "$LATEST" else None),
            "Runtime": c.runtime,
            "Role": c.role,
            "Handler": c.handler,
            "CodeSize": c.code_size,
            "Description": c.description,
            "Timeout": c.timeout_s,
            "MemorySize": c.memory_mb,
            "LastModified": c.last_modified,
            "CodeSha256": code_sha256_b64(c.code_sha256),
            "Version": c.version,
            "TracingConfig": {"Mode": c.tracing_mode},
            "RevisionId": c.revision_id,
            "State": c.state.value,
            "LastUpdateStatus": c.last_update_status.value,
            "PackageType": "Zip",
            "Architectures": list(c.architectures),
            "EphemeralStorage": {"Size": c.ephemeral_storage_mb},
            "SnapStart": {
                "ApplyOn": c.snap_start,
                "OptimizationStatus": "On" if c.snapshotted else "Off",
            },
            "LoggingConfig": {"LogFormat": c.log_format, "LogGroup": f"/aws/lambda/{c.name}"},
        }
        if c.environment:
            out["Environment"] = {"Variables": dict(c.environment)}
        if c.kms_key_arn:
            out["KMSKeyArn"] = c.kms_key_arn
        if c.vpc_subnets:
            out["VpcConfig"] = {
                "SubnetIds": list(c.vpc_subnets),
                "SecurityGroupIds": list(c.vpc_security_groups),
                "VpcId": "vpc-lamina",
            }
        if c.state_reason:
            out["StateReason"] = c.state_reason
            out["StateReasonCode"] = c.state_reason_code
            out["LastUpdateStatusReason"] = c.state_reason
            out["LastUpdateStatusReasonCode"] = c.state_reason_code
        return out

    def alias(self, a: Alias) -> dict[str, Any]:
        out: dict[str, Any] = {
            "AliasArn": self.arn(a.function, a.name),
            "Name": a.name,
            "FunctionVersion": a.version,
            "Description": a.description,
            "RevisionId": a.revision_id,
        }
        if a.weights:
            out["RoutingConfig"] = {"AdditionalVersionWeights": dict(a.weights)}
        return out

    def invoke_config(self, name: str, qualifier: str, c: EventInvokeConfig) -> dict[str, Any]:
        from datetime import UTC, datetime

        out: dict[str, Any] = {
            "LastModified": datetime.fromtimestamp(c.last_modified, UTC),
            "FunctionArn": self.arn(name, qualifier),
            "MaximumRetryAttempts": c.max_retries,
            "MaximumEventAgeInSeconds": c.max_event_age_s,
        }
        if c.destinations:
            out["DestinationConfig"] = {
                kind: {"Destination": arn} for kind, arn in c.destinations.items()
            }
        return out
