"""Rules for function names, handlers, limits and environment variables.

Messages follow Lambda's wording, so a user who searches the error finds the AWS
documentation for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lamina.errors import InvalidParameterValue, ValidationError

NAME_MAX = 64
_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_QUALIFIER = re.compile(r"\$LATEST|[a-zA-Z0-9_-]+")
_ALIAS = re.compile(r"(?!^[0-9]+$)([a-zA-Z0-9-_]+)")
# Accepts a bare name, a partial ARN (123456789012:function:name) or a full ARN,
# each with an optional :qualifier, as FunctionName does in every Lambda operation.
_FUNCTION_REF = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?$"
)
_PY_HANDLER = re.compile(r"^[^\s]+\.[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV_KEYS = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION",
        "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)  # fmt: skip
ENV_MAX_BYTES = 4096
MEMORY_MIN, MEMORY_MAX = 128, 10240
TIMEOUT_MIN, TIMEOUT_MAX = 1, 900
EPHEMERAL_MIN, EPHEMERAL_MAX = 512, 10240


@dataclass(frozen=True, slots=True)
class FunctionRef:
    name: str
    qualifier: str | None


def _constraint(value: object, member: str, constraint: str) -> ValidationError:
    return ValidationError(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def parse_function_ref(raw: str, qualifier: str | None = None) -> FunctionRef:
    """Split FunctionName (name, partial ARN or ARN, maybe qualified) into name + qualifier."""
    match = _FUNCTION_REF.match(raw or "")
    if match is None or not _NAME.fullmatch(match["name"]):
        raise _constraint(
            raw,
            "functionName",
            "Member must satisfy regular expression pattern: "
            "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
            "(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
        )
    name = match["name"]
    if len(name) > NAME_MAX:
        raise _constraint(
            name, "functionName", f"Member must have length less than or equal to {NAME_MAX}"
        )
    embedded = match["qualifier"]
    if embedded and qualifier and embedded != qualifier:
        raise InvalidParameterValue(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    final = embedded or qualifier or None
    if final is not None:
        validate_qualifier(final)
    return FunctionRef(name, final)


def validate_qualifier(qualifier: str) -> None:
    if not _QUALIFIER.fullmatch(qualifier) or len(qualifier) > 128:
        raise _constraint(
            qualifier,
            "qualifier",
            "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)",
        )


def validate_alias_name(name: str) -> None:
    if not _ALIAS.fullmatch(name) or len(name) > 128:
        raise _constraint(
            name,
            "name",
            "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
        )


def validate_handler(handler: str, runtime: str) -> None:
    if not handler or len(handler) > 128 or any(c.isspace() for c in handler):
        raise _constraint(
            handler, "handler", "Member must satisfy regular expression pattern: [^\\s]+"
        )
    if runtime.startswith("python") and not _PY_HANDLER.match(handler):
        raise InvalidParameterValue(
            f"Handler '{handler}' is malformed: a Python handler is 'module.function' "
            "(for example 'app.handler', or 'src/app.handler' for a file in a folder)."
        )


def validate_limits(memory_mb: int, timeout_s: int, ephemeral_mb: int) -> None:
    if not MEMORY_MIN <= memory_mb <= MEMORY_MAX:
        bound = (
            "greater than or equal to 128"
            if memory_mb < MEMORY_MIN
            else "less than or equal to 10240"
        )
        raise _constraint(memory_mb, "memorySize", f"Member must have value {bound}")
    if not TIMEOUT_MIN <= timeout_s <= TIMEOUT_MAX:
        bound = (
            "greater than or equal to 1" if timeout_s < TIMEOUT_MIN else "less than or equal to 900"
        )
        raise _constraint(timeout_s, "timeout", f"Member must have value {bound}")
    if not EPHEMERAL_MIN <= ephemeral_mb <= EPHEMERAL_MAX:
        raise InvalidParameterValue(
            f"Ephemeral storage size {ephemeral_mb} MB is out of range: use 512 to 10240 MB."
        )


def validate_environment(variables: Mapping[str, str]) -> None:
    reserved = sorted(k for k in variables if k in RESERVED_ENV_KEYS)
    if reserved:
        raise InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )
    for key in variables:
        if not re.fullmatch(r"[a-zA-Z]([a-zA-Z0-9_])*", key):
            raise _constraint(
                key,
                "environment.variables",
                "Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+",
            )
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in variables.items())
    if size > ENV_MAX_BYTES:
        raise InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: {size} bytes"
        )
