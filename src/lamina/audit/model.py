"""One audit event per control-plane call, and what is (and is never) kept of it.

An event records who (principal ARN and access key id — an id, not a secret), from
where (source IP), what (service, operation, the resource it named), when, the
outcome (allowed, or denied: a 403), the error code and the request id. It never
records a request body: the resource is picked from a fixed list of identifier
members (names and ARNs), so environment variables, SecretString, plaintexts and
policy documents cannot reach the audit log.

Data-plane calls are left out when they succeed: Lambda Invoke (the hot path; its
volume would drown the control plane) and CloudWatch Logs event reads
(GetLogEvents / FilterLogEvents, which `lamina logs --follow` polls every second).
A *denied* data-plane call is still recorded: a refused Invoke is exactly what an
audit should show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

DATA_PLANE: frozenset[tuple[str, str]] = frozenset(
    {
        ("lambda", "Invoke"),
        ("lambda", "InvokeAsync"),
        ("lambda", "InvokeWithResponseStream"),
        ("logs", "GetLogEvents"),
        ("logs", "FilterLogEvents"),
    }
)

# Members naming the resource a call acts on, most specific service first. Only
# identifiers: never a member that carries a value (SecretString, Environment...).
RESOURCE_MEMBERS = (
    "FunctionName",
    "CodeSigningConfigArn",
    "profileName",
    "SecretId",
    "KeyId",
    "RoleName",
    "RoleArn",
    "UserName",
    "PolicyArn",
    "logGroupName",
    "Name",  # Secrets Manager CreateSecret's secret name
)
_MAX_RESOURCE = 512


@dataclass(frozen=True, slots=True)
class AuditEvent:
    time_ms: int
    request_id: str
    principal_arn: str
    access_key_id: str
    source_ip: str
    service: str
    operation: str
    resource: str
    allowed: bool
    error_code: str  # "" when the call succeeded

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def resource_of(params: Mapping[str, Any]) -> str:
    """The resource a call names, from its identifier members only."""
    for member in RESOURCE_MEMBERS:
        value = params.get(member)
        if isinstance(value, str) and value:
            qualifier = params.get("Qualifier") if member == "FunctionName" else None
            if isinstance(qualifier, str) and qualifier:
                value = f"{value}:{qualifier}"
            return value[:_MAX_RESOURCE]
    return ""


def is_recorded(service: str, operation: str, denied: bool) -> bool:
    return denied or (service, operation) not in DATA_PLANE
