"""The function model: a configuration per version, aliases, and per-function settings.

`$LATEST` is mutable; PublishVersion freezes a copy of it as version N. An alias
points at a version and may split traffic to a second one by weight.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

LATEST = "$LATEST"


class State(enum.StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    FAILED = "Failed"


class UpdateStatus(enum.StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """One version's configuration ($LATEST or a published number)."""

    name: str
    version: str
    runtime: str
    handler: str
    role: str
    code_sha256: str  # hex digest of the zip; names the extracted code folder
    code_size: int
    revision_id: str
    last_modified: str  # ISO 8601 as Lambda renders it: 2024-01-01T00:00:00.000+0000
    memory_mb: int = 128
    timeout_s: int = 3
    ephemeral_storage_mb: int = 512
    description: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    architectures: tuple[str, ...] = ("x86_64",)
    state: State = State.PENDING
    state_reason: str = ""
    state_reason_code: str = ""
    last_update_status: UpdateStatus = UpdateStatus.IN_PROGRESS
    tracing_mode: str = "PassThrough"
    log_format: str = "Text"
    snap_start: str = "None"  # SnapStart.ApplyOn: "PublishedVersions" or "None"
    kms_key_arn: str = ""  # customer KMS key sealing the environment variables at rest
    # VpcConfig. lamina reads a function placed in subnets as placed in private subnets
    # with no route out: its environments get no network egress (the Runtime API and
    # nothing else stays reachable).
    vpc_subnets: tuple[str, ...] = ()
    vpc_security_groups: tuple[str, ...] = ()

    @property
    def egress(self) -> bool:
        return not self.vpc_subnets

    @property
    def snapshotted(self) -> bool:
        """A published version of a SnapStart function starts from a snapshot."""
        return self.snap_start == "PublishedVersions" and self.version != LATEST

    @property
    def code_key(self) -> str:
        """Environments of one function are interchangeable only within one revision."""
        return f"{self.name}:{self.version}:{self.revision_id}"


@dataclass(frozen=True, slots=True)
class Alias:
    function: str
    name: str
    version: str
    description: str = ""
    # Extra version -> fraction of traffic (0.0-1.0); the rest goes to `version`.
    weights: Mapping[str, float] = field(default_factory=dict)
    revision_id: str = ""


@dataclass(frozen=True, slots=True)
class EventInvokeConfig:
    """How async invokes of one function (or qualifier) are retried."""

    max_retries: int = 2
    max_event_age_s: int = 21600
    last_modified: float = 0.0
    destinations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProvisionedConfig:
    requested: int
    last_modified: str


@dataclass(slots=True)
class Function:
    """Everything lamina knows of one function name, kept in memory; written through to SQL."""

    latest: FunctionConfig
    versions: dict[str, FunctionConfig] = field(default_factory=dict)
    aliases: dict[str, Alias] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    event_invoke_configs: dict[str, EventInvokeConfig] = field(default_factory=dict)
    provisioned: dict[str, ProvisionedConfig] = field(default_factory=dict)
    next_version: int = 1
    created: float = 0.0

    @property
    def name(self) -> str:
        return self.latest.name
