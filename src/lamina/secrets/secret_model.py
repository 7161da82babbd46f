"""Secrets Manager's model: secrets, their versions, and the rules of staging labels.

A secret holds versions; staging labels say which version is which. Each label is on
at most one version of a secret. Putting a new version AWSCURRENT moves AWSCURRENT
to it and AWSPREVIOUS to the version that was current, as Secrets Manager does; a
version left with no label is "deprecated" and kept until the version cap prunes it.

Values live in `SecretValue`, whose repr never shows them: a secret that reaches a
log line, a traceback or an error message through repr() shows as <redacted>.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from lamina.secrets.errors import InvalidParameterException, InvalidRequestException

AWSCURRENT = "AWSCURRENT"
AWSPREVIOUS = "AWSPREVIOUS"
MAX_VALUE_BYTES = 65_536
MAX_VERSIONS = 100  # Secrets Manager's quota of versions per secret
MIN_RECOVERY_DAYS, MAX_RECOVERY_DAYS, DEFAULT_RECOVERY_DAYS = 7, 30, 30
_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_SUFFIX_ALPHABET = string.ascii_letters + string.digits
MARKED_FOR_DELETION = (
    "You can't perform this operation on the secret because it was marked for deletion."
)


@dataclass(frozen=True, slots=True, repr=False)
class SecretValue:
    """Exactly one of `string` and `binary` (Secrets Manager's SecretString/SecretBinary)."""

    string: str | None = None
    binary: bytes | None = None

    def __post_init__(self) -> None:
        if (self.string is None) == (self.binary is None):
            raise InvalidParameterException(
                "You must provide either SecretString or SecretBinary, not both."
            )
        if len(self.to_bytes()) - 1 > MAX_VALUE_BYTES:
            raise InvalidParameterException(
                f"The secret value must be at most {MAX_VALUE_BYTES} bytes."
            )

    def __repr__(self) -> str:
        kind = "string" if self.string is not None else "binary"
        return f"SecretValue({kind}=<redacted>)"

    def to_bytes(self) -> bytes:
        """The sealed form's plaintext: a kind byte, then the value."""
        if self.string is not None:
            return b"S" + self.string.encode("utf-8")
        assert self.binary is not None
        return b"B" + self.binary

    @classmethod
    def from_bytes(cls, raw: bytes) -> SecretValue:
        if raw[:1] == b"S":
            return cls(string=raw[1:].decode("utf-8"))
        return cls(binary=raw[1:])


@dataclass(frozen=True, slots=True)
class Secret:
    arn: str
    name: str
    description: str | None
    kms_key_id: str | None
    created: datetime
    last_changed: datetime
    last_accessed: datetime | None = None
    deleted: datetime | None = None  # when DeleteSecret marked it
    deletion_date: datetime | None = None  # when it will be gone
    tags: tuple[tuple[str, str], ...] = ()
    version_stages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def require_active(self) -> None:
        if self.deleted is not None:
            raise InvalidRequestException(MARKED_FOR_DELETION)


@dataclass(frozen=True, slots=True)
class SecretVersion:
    secret: Secret
    version_id: str
    stages: tuple[str, ...]
    created: datetime
    value: SecretValue


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidParameterException(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any "
            "of the following: -/_+=.@!"
        )


def check_recovery_window(days: int | None, force: bool) -> int | None:
    """Days until deletion, or None to delete now."""
    if force and days is not None:
        raise InvalidParameterException(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
        )
    if force:
        return None
    days = DEFAULT_RECOVERY_DAYS if days is None else days
    if not MIN_RECOVERY_DAYS <= days <= MAX_RECOVERY_DAYS:
        raise InvalidParameterException(
            "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
        )
    return days


def secret_arn(region: str, account_id: str, name: str) -> str:
    # The random suffix makes a re-created secret's ARN differ from the deleted one's,
    # so a policy naming the old ARN does not silently cover the new secret.
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(6))
    return f"arn:aws:secretsmanager:{region}:{account_id}:secret:{name}-{suffix}"


def value_from(string: str | None, binary: bytes | None) -> SecretValue | None:
    """The value a request carries (None when it carries none)."""
    if string is None and binary is None:
        return None
    if string is not None and binary is not None:
        raise InvalidParameterException(
            "You can't specify both a binary secret value and a string secret value in the "
            "same secret."
        )
    return SecretValue(string=string, binary=binary)


def move_stages(
    versions: Mapping[str, Sequence[str]], new_version: str, stages: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Every version's labels after `stages` are attached to `new_version`.

    Each label leaves the version that had it. AWSCURRENT moving to another version
    leaves AWSPREVIOUS on the version it left (taking AWSPREVIOUS from whoever had it).
    """
    moving = set(stages)
    result: dict[str, list[str]] = {vid: list(labels) for vid, labels in versions.items()}
    result.setdefault(new_version, [])
    old_current = next(
        (vid for vid, labels in versions.items() if AWSCURRENT in labels and vid != new_version),
        None,
    )
    if AWSCURRENT in moving and old_current is not None:
        moving.add(AWSPREVIOUS)
    for vid, labels in result.items():
        if vid != new_version:
            labels[:] = [label for label in labels if label not in moving]
    for label in stages:
        if label not in result[new_version]:
            result[new_version].append(label)
    if AWSCURRENT in stages and old_current is not None:
        result[old_current].append(AWSPREVIOUS)
    return {vid: tuple(labels) for vid, labels in result.items()}
