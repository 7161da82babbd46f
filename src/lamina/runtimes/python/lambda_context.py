"""The `context` argument of a handler, attribute for attribute as awslambdaric's.

Types follow awslambdaric, not intuition: `memory_limit_in_mb` and
`function_version` are the environment's strings, `identity` is always a
CognitoIdentity (its fields None when the invoke carried none), and
`client_context` is None unless the invoke carried one.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

# The W3C trace-context fields `LambdaContext.w3c()` exposes; others are dropped.
W3C_ALLOWED_FIELDS = ("traceparent", "tracestate", "baggage")


class FunctionFacts:
    """The context's per-environment values, read from the environment once.

    awslambdaric re-reads these five variables for every invocation; on the warm
    path that was the largest single cost of building a context, and Lambda sets
    them before the process starts. A function that rewrites them in os.environ
    at run time sees the start-up values here (the one difference).
    """

    __slots__ = (
        "function_name",
        "function_version",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
    )

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION")


class LambdaContext:
    def __init__(
        self,
        invoke_id: str,
        client_context: dict[str, object] | None,
        cognito_identity: dict[str, object] | None,
        epoch_deadline_time_in_ms: int,
        invoked_function_arn: str | None = None,
        tenant_id: str | None = None,
        facts: FunctionFacts | None = None,
    ) -> None:
        if facts is None:
            facts = FunctionFacts(os.environ)
        self.aws_request_id = invoke_id
        self.log_group_name = facts.log_group_name
        self.log_stream_name = facts.log_stream_name
        self.function_name = facts.function_name
        self.memory_limit_in_mb = facts.memory_limit_in_mb
        self.function_version = facts.function_version
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self._w3c_fields = _pop_w3c(client_context)

        self.client_context = _from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _from_dict(Client, self.client_context.client)

        self.identity = identity = CognitoIdentity()
        if cognito_identity is not None:
            identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        else:  # two stores, not _from_dict's loop of setattr: this runs on every call
            identity.cognito_identity_id = identity.cognito_identity_pool_id = None

        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self) -> int:
        delta_ms = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta_ms if delta_ms > 0 else 0

    def w3c(self) -> dict[str, str]:
        """The W3C trace context the invoke carried in its client context."""
        return dict(self._w3c_fields)

    def log(self, msg: object) -> None:
        logging = sys.modules.get("logging")
        for handler in logging.getLogger().handlers if logging is not None else ():
            if hasattr(handler, "log_sink"):
                handler.log_sink.log(str(msg))
                return
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(["
            f"aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},"
            f"identity={self.identity},"
            f"tenant_id={self.tenant_id}"
            "])"
        )


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(["
            f"cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}"
            "])"
        )


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(["
            f"installation_id={self.installation_id},"
            f"app_title={self.app_title},"
            f"app_version_name={self.app_version_name},"
            f"app_version_code={self.app_version_code},"
            f"app_package_name={self.app_package_name}"
            "])"
        )


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}([custom={self.custom},env={self.env},client={self.client}])"
        )


def _from_dict(cls, values):  # type: ignore[no-untyped-def]
    if values is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, values.get(field, None))
    return obj


def _pop_w3c(client_context: dict[str, object] | None) -> dict[str, str]:
    """Takes `w3c` out of the client context (it is not readable through
    `context.client_context`) and keeps its allowed string fields."""
    if not isinstance(client_context, dict) or "w3c" not in client_context:
        return {}
    raw = client_context.pop("w3c")
    if not isinstance(raw, dict):
        return {}
    return {key: raw[key] for key in W3C_ALLOWED_FIELDS if isinstance(raw.get(key), str)}
