"""IAM's rules for names, paths and durations, and how ids and ARNs are made.

Messages follow IAM's validation errors so a caller sees what to fix.
"""

from __future__ import annotations

import re
import secrets
import string

from lamina.iam.errors import IamValidationError

_NAME = re.compile(r"^[\w+=,.@-]+$")
_PATH = re.compile(r"^(/|/[\x21-\x7E]+/)$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
# A service names its sessions itself (Lambda: after the function, which may be one
# character long), so only the character set and the upper bound apply.
_SERVICE_SESSION_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ID_ALPHABET = string.ascii_uppercase + "234567"

MIN_SESSION_SECONDS = 900
DEFAULT_MAX_SESSION_SECONDS = 3600
MAX_SESSION_SECONDS = 12 * 3600
CHAINED_SESSION_SECONDS = 3600  # role chaining caps a session at one hour


def _invalid(value: object, member: str, constraint: str) -> IamValidationError:
    return IamValidationError(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def check_name(name: str, member: str, max_length: int = 64) -> str:
    if not 1 <= len(name) <= max_length:
        raise _invalid(name, member, f"Member must have length less than or equal to {max_length}")
    if not _NAME.match(name):
        raise _invalid(name, member, r"Member must satisfy regular expression pattern: [\w+=,.@-]+")
    return name


def check_path(path: str | None, member: str = "path") -> str:
    if path is None:
        return "/"
    if len(path) > 512 or not _PATH.match(path):
        raise _invalid(
            path,
            member,
            r"Member must satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)",
        )
    return path


def check_session_name(name: str, *, by_service: bool = False) -> str:
    if not (_SERVICE_SESSION_NAME if by_service else _SESSION_NAME).match(name):
        raise _invalid(
            name,
            "roleSessionName",
            r"Member must satisfy regular expression pattern: [\w+=,.@-]* "
            "and have length between 2 and 64",
        )
    return name


def check_duration(seconds: int, maximum: int, member: str = "durationSeconds") -> int:
    if seconds < MIN_SESSION_SECONDS:
        raise _invalid(
            seconds,
            member,
            f"Member must have value greater than or equal to {MIN_SESSION_SECONDS}",
        )
    if seconds > maximum:
        raise IamValidationError(
            f"The requested DurationSeconds exceeds the MaxSessionDuration set for this role "
            f"({maximum} seconds)."
        )
    return seconds


def check_max_session_duration(seconds: int | None) -> int:
    if seconds is None:
        return DEFAULT_MAX_SESSION_SECONDS
    if not DEFAULT_MAX_SESSION_SECONDS <= seconds <= MAX_SESSION_SECONDS:
        raise _invalid(
            seconds,
            "maxSessionDuration",
            f"Member must have value between {DEFAULT_MAX_SESSION_SECONDS} "
            f"and {MAX_SESSION_SECONDS}",
        )
    return seconds


def new_id(prefix: str, length: int) -> str:
    """An AWS-style unique id: `AIDA...` users, `AROA...` roles, `AKIA...`/`ASIA...` keys."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_secret() -> str:
    return secrets.token_urlsafe(30)  # 40 characters, like AWS secret keys


def new_session_token() -> str:
    return secrets.token_urlsafe(96)


def entity_arn(account: str, kind: str, path: str, name: str) -> str:
    """`arn:aws:iam::ACCOUNT:user/path/name` (kind: user, role, policy)."""
    return f"arn:aws:iam::{account}:{kind}{path}{name}"


def name_from_arn(arn: str, kind: str) -> str | None:
    """The entity name at the end of an IAM ARN of `kind`, or None if it is not one."""
    prefix, sep, rest = arn.partition(f":{kind}/")
    if not sep or not prefix.startswith("arn:aws:iam::"):
        return None
    return rest.rsplit("/", 1)[-1] or None
