"""ListSecrets' filters and paging, as Secrets Manager documents them.

A secret matches when every filter matches; a filter matches when any of its values
does. A value is a prefix, compared in any case; a leading "!" negates it. The
NextToken is an offset into the sorted result: enough for one server's listing,
opaque to clients.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lamina.secrets.errors import InvalidNextTokenException, InvalidParameterException
from lamina.secrets.secret_model import Secret


@dataclass(frozen=True, slots=True)
class ListFilter:
    """One of ListSecrets' Filters: `key` is name, description, tag-key, tag-value or all."""

    key: str
    values: tuple[str, ...]


def page_start(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise InvalidNextTokenException("The NextToken value is not valid.")
    return int(token)


def matches(secret: Secret, filters: Iterable[ListFilter]) -> bool:
    """Every filter matches; a filter matches when any of its values does (prefix, any
    case), and a value starting with "!" matches what it would not."""
    for item in filters:
        fields = _filter_fields(secret, item.key)
        if not any(_prefix_match(fields, value) for value in item.values):
            return False
    return True


def _filter_fields(secret: Secret, key: str) -> list[str]:
    tag_keys = [k for k, _ in secret.tags]
    tag_values = [v for _, v in secret.tags]
    if key == "name":
        return [secret.name]
    if key == "description":
        return [secret.description or ""]
    if key == "tag-key":
        return tag_keys
    if key == "tag-value":
        return tag_values
    if key == "all":
        return [secret.name, secret.description or "", *tag_keys, *tag_values]
    raise InvalidParameterException(f"Invalid filter key: {key}")


def _prefix_match(fields: list[str], value: str) -> bool:
    negate = value.startswith("!")
    prefix = value.removeprefix("!").lower()
    hit = any(f.lower().startswith(prefix) for f in fields)
    return hit != negate
