"""What IAM knows: principals, credentials and the stored entities behind them.

Entities (`User`, `AccessKey`, `Role`, ...) are the durable records, one table each
(see `store.py`); a `Principal` is who a request is from, resolved from its access key
by the `IamDirectory` without touching the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

DEFAULT_ACCOUNT = "000000000000"


class PrincipalKind(StrEnum):
    ROOT = "root"
    USER = "user"
    ASSUMED_ROLE = "assumed-role"


class OwnerKind(StrEnum):
    """Who an inline policy or an attachment belongs to."""

    USER = "user"
    ROLE = "role"


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity a request was signed as.

    `name` is the user name (user), the role name (assumed-role) or "root"; an
    assumed role's session name is `session_name`. A temporary credential's principal
    carries the session token the request must present and when it stops working.
    """

    arn: str
    kind: PrincipalKind
    account: str
    name: str
    user_id: str  # GetCallerIdentity's UserId: account id, AIDA..., or AROA...:session
    session_token_expected: str | None = None
    expires: float | None = None
    session_name: str | None = None


@dataclass(frozen=True, slots=True)
class Credential:
    """An access key's secret and the principal it signs as."""

    access_key_id: str
    secret: str
    principal: Principal


@dataclass(frozen=True, slots=True)
class TemporaryCredentials:
    access_key_id: str
    secret: str
    session_token: str
    expiration: datetime  # UTC
    principal: Principal


# -- durable entities (field names are column names) ---------------------------------


@dataclass(frozen=True, slots=True)
class User:
    name: str
    user_id: str
    path: str
    arn: str
    created: float


@dataclass(frozen=True, slots=True)
class AccessKey:
    # Stored in plain text for now: SigV4 needs the secret itself, so encrypting it
    # means envelope encryption with the data-dir key (see docs/iam.md).
    access_key_id: str
    user_name: str
    secret: str
    status: str  # "Active" | "Inactive"
    created: float


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    role_id: str
    path: str
    arn: str
    trust_policy: str
    description: str
    max_session_duration: int
    created: float


@dataclass(frozen=True, slots=True)
class InlinePolicy:
    owner_kind: str  # OwnerKind value
    owner_name: str
    policy_name: str
    document: str


@dataclass(frozen=True, slots=True)
class ManagedPolicy:
    arn: str
    name: str
    policy_id: str
    path: str
    description: str
    document: str  # the default version's document
    default_version_id: str
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class Attachment:
    owner_kind: str  # OwnerKind value
    owner_name: str
    policy_arn: str


@dataclass(frozen=True, slots=True)
class RoleSession:
    """Temporary credentials issued by AssumeRole (kept so they survive a restart)."""

    access_key_id: str
    secret: str
    session_token: str
    role_name: str
    session_name: str
    expires: float
