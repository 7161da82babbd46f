"""Request and response bodies for the call log: redacted, then capped.

Always blanked, whatever the configuration says:
- members whose name says they hold a secret (`api_key`, `authorization`, `password`,
  `secret`, `token`, ... in any case, with `-` or `_`);
- string values that look like a credential wherever they appear (provider and lamina
  API keys, AWS access key ids, bearer tokens, JWTs, private keys), replaced in place
  so the rest of a prompt stays readable.

Configured redactions (`log_bodies.redact`) add JSON paths, dot-separated with `*`
for every member or item (`messages.*.content`), or bare member names matched at any
depth (`user`). Runs in the accounting writer, off the request path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

REDACTED = "[REDACTED]"

_SECRET_NAMES = re.compile(
    r"^(x[-_])?(api[-_]?key|authorization|proxy[-_]authorization|password|passwd|secret"
    r"|client[-_]secret|access[-_]token|refresh[-_]token|id[-_]token|token|session[-_]token"
    r"|aws[-_]secret[-_]access[-_]key|aws[-_]session[-_]token|private[-_]key|cookie)$",
    re.IGNORECASE,
)
_SECRET_VALUES = re.compile(
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"  # OpenAI, Anthropic
    r"|\blk-[A-Za-z0-9_\-]{16,}"  # lamina virtual and function keys
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key ids
    r"|\bAIza[A-Za-z0-9_\-]{30,}"  # Google API keys
    r"|\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}"  # GitHub tokens
    r"|\bxox[abprs]-[A-Za-z0-9\-]{10,}"  # Slack tokens
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+"  # JWTs
    r"|\b[Bb]earer\s+[A-Za-z0-9._~+/\-]{12,}=*"
    # Matched in JSON text: the block's newlines are escaped and it holds no quote.
    r'|-----BEGIN [A-Z ]*PRIVATE KEY-----[^"]*?-----END [A-Z ]*PRIVATE KEY-----'
)
# Every credential shape above contains one of these. Looking for them with `in` is a
# fast scan of the text; the expression runs only on the rare body that has one.
_TRIGGERS = (
    "sk-",
    "lk-",
    "AKIA",
    "ASIA",
    "AIza",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "eyJ",
    "earer",
    "PRIVATE KEY",
)
# Every secret member name above contains one of these.
_NAME_HINTS = ("key", "auth", "pass", "secret", "token", "cookie")


def scrub(text: str) -> str:
    """`text` with every credential-shaped value replaced."""
    if any(trigger in text for trigger in _TRIGGERS):
        return _SECRET_VALUES.sub(REDACTED, text)
    return text


def redact(value: Any, rules: Iterable[str] = ()) -> Any:
    """A copy of `value` with secret-named members and the configured paths / keys
    blanked (credential-shaped values are `scrub`bed from the serialized text)."""
    paths = [rule.split(".") for rule in rules if "." in rule]
    keys = frozenset(rule for rule in rules if "." not in rule)
    return _walk(value, [] if paths else None, paths, keys)


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in _NAME_HINTS) and bool(_SECRET_NAMES.match(name))


def _walk(value: Any, at: list[str] | None, paths: list[list[str]], keys: frozenset[str]) -> Any:
    # `at` (the path so far) is only kept when there are paths to match.
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, member in value.items():
            name = str(name)
            here = None if at is None else [*at, name]
            if name in keys or _secret_name(name) or (here and _matches(here, paths)):
                out[name] = REDACTED
            else:
                out[name] = _walk(member, here, paths, keys)
        return out
    if isinstance(value, list):
        if at is None:
            return [_walk(item, None, paths, keys) for item in value]
        items = []
        for index, item in enumerate(value):
            here = [*at, str(index)]
            items.append(REDACTED if _matches(here, paths) else _walk(item, here, paths, keys))
        return items
    return value


def _matches(at: list[str], paths: list[list[str]]) -> bool:
    return any(
        len(path) == len(at) and all(p in ("*", a) for p, a in zip(path, at, strict=True))
        for path in paths
    )


def logged_body(value: Any, rules: Iterable[str], max_bytes: int) -> str | None:
    """The redacted body as JSON text, cut at `max_bytes` (a cut body says so)."""
    if value is None:
        return None
    # Members starting with "_" are lamina's own (a provider's native payload).
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if not str(k).startswith("_")}
    # Scrubbed before the cut, so a cut can never leave half a key readable.
    text = scrub(orjson.dumps(redact(value, rules)).decode())
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    kept = raw[:max_bytes].decode(errors="ignore")
    return f"{kept}…[truncated {len(raw) - max_bytes} bytes]"
