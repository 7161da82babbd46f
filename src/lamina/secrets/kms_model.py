"""KMS keys as the engine sees them: the key lifecycle and the ways a request names a key.

A key is Enabled, Disabled or PendingDeletion. The transitions are AWS's:

    Enabled  --disable-->  Disabled  --enable-->  Enabled
    Enabled | Disabled  --schedule_deletion-->  PendingDeletion
    PendingDeletion  --cancel_deletion-->  Disabled   (AWS leaves a rescued key off)

Enabling or disabling a key already in that state is allowed (AWS does not refuse
it). Anything else, e.g. enabling a key pending deletion, is KMSInvalidStateException.
When the pending window ends the key is gone: it is purged, not a fourth state.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from types import MappingProxyType

from lamina.secrets.errors import (
    DisabledException,
    InvalidAliasNameException,
    KMSInvalidStateException,
    KmsValidationException,
)

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
MIN_PENDING_DAYS, MAX_PENDING_DAYS, DEFAULT_PENDING_DAYS = 7, 30, 30
MAX_PLAINTEXT_BYTES = 4096  # what KMS Encrypt accepts
_ALIAS_NAME = re.compile(r"^alias/[a-zA-Z0-9/_-]{1,250}$")


class KeyState(Enum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"


_STATE_PHRASE = MappingProxyType(
    {"Enabled": "enabled", "Disabled": "disabled", "PendingDeletion": "pending deletion"}
)


class KeyAction(Enum):
    ENABLE = "enable"
    DISABLE = "disable"
    SCHEDULE_DELETION = "schedule_deletion"
    CANCEL_DELETION = "cancel_deletion"


_TRANSITIONS: Mapping[tuple[KeyState, KeyAction], KeyState] = MappingProxyType(
    {
        (KeyState.ENABLED, KeyAction.ENABLE): KeyState.ENABLED,
        (KeyState.DISABLED, KeyAction.ENABLE): KeyState.ENABLED,
        (KeyState.ENABLED, KeyAction.DISABLE): KeyState.DISABLED,
        (KeyState.DISABLED, KeyAction.DISABLE): KeyState.DISABLED,
        (KeyState.ENABLED, KeyAction.SCHEDULE_DELETION): KeyState.PENDING_DELETION,
        (KeyState.DISABLED, KeyAction.SCHEDULE_DELETION): KeyState.PENDING_DELETION,
        (KeyState.PENDING_DELETION, KeyAction.CANCEL_DELETION): KeyState.DISABLED,
    }
)


@dataclass(frozen=True, slots=True)
class KmsKey:
    key_id: str
    arn: str
    account_id: str
    region: str
    description: str
    key_usage: str
    key_spec: str
    state: KeyState
    created: datetime
    material_version: int
    deletion_date: datetime | None = None
    pending_window_days: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def next_state(self, action: KeyAction) -> KeyState:
        state = _TRANSITIONS.get((self.state, action))
        if state is None:
            raise KMSInvalidStateException(f"{self.arn} is {_STATE_PHRASE[self.state.value]}.")
        return state

    def check_usable(self) -> None:
        """Refuse cryptographic use unless the key is enabled, with AWS's error for why."""
        if self.state is KeyState.DISABLED:
            raise DisabledException(f"{self.arn} is disabled.")
        if self.state is KeyState.PENDING_DELETION:
            raise KMSInvalidStateException(f"{self.arn} is pending deletion.")


@dataclass(frozen=True, slots=True)
class KmsAlias:
    name: str
    arn: str
    key_id: str
    created: datetime


@dataclass(frozen=True, slots=True, repr=False)
class DataKey:
    """A data key from GenerateDataKey: `plaintext` is secret, `ciphertext` is not."""

    plaintext: bytes
    ciphertext: bytes
    key: KmsKey

    def __repr__(self) -> str:
        return f"DataKey(key={self.key.arn!r}, plaintext=<redacted>, ciphertext=<{len(self.ciphertext)} bytes>)"


@dataclass(frozen=True, slots=True, repr=False)
class Decrypted:
    plaintext: bytes
    key: KmsKey

    def __repr__(self) -> str:
        return f"Decrypted(key={self.key.arn!r}, plaintext=<redacted>)"


@dataclass(frozen=True, slots=True)
class KeyRef:
    """What a KeyId parameter names: a key (`key_id`) or an alias (`alias_name`)."""

    key_id: str | None = None
    alias_name: str | None = None


def new_key_id() -> str:
    return str(uuid.uuid4())


def key_arn(region: str, account_id: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:key/{key_id}"


def alias_arn(region: str, account_id: str, alias_name: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:{alias_name}"


def parse_key_ref(text: str) -> KeyRef:
    """Key id, key ARN, alias name or alias ARN — the four spellings KMS accepts."""
    if not text:
        raise KmsValidationException("KeyId must not be empty.")
    if text.startswith("arn:"):
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[2] != "kms":
            raise KmsValidationException(f"Invalid arn {text}")
        resource = parts[5]
        if resource.startswith("key/"):
            return KeyRef(key_id=resource.removeprefix("key/"))
        if resource.startswith("alias/"):
            return KeyRef(alias_name=resource)
        raise KmsValidationException(f"Invalid arn {text}")
    if text.startswith("alias/"):
        return KeyRef(alias_name=text)
    return KeyRef(key_id=text)


def check_alias_name(name: str) -> None:
    if not _ALIAS_NAME.match(name):
        raise KmsValidationException(
            f'Alias must start with the prefix "alias/" and contain only alphanumeric '
            f"characters, '/', '_' or '-': {name}"
        )
    if name.startswith("alias/aws/"):
        raise InvalidAliasNameException("Alias must not begin with 'alias/aws/'.")


def check_pending_window(days: int | None) -> int:
    if days is None:
        return DEFAULT_PENDING_DAYS
    if not MIN_PENDING_DAYS <= days <= MAX_PENDING_DAYS:
        raise KmsValidationException(
            f"PendingWindowInDays must be between {MIN_PENDING_DAYS} and "
            f"{MAX_PENDING_DAYS}; got {days}."
        )
    return days


def check_context(context: Mapping[str, str] | None) -> Mapping[str, str]:
    """EncryptionContext: string pairs; the wire gives us a dict or nothing."""
    if context is None:
        return {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
        raise KmsValidationException("EncryptionContext keys and values must be strings.")
    return context
