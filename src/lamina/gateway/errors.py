"""The gateway's refusals and failures, as members of lamina's one error tree.

    LaminaError
    ├── ClientError
    │   ├── InvalidGatewayRequest     400  malformed body, unknown parameter shape
    │   ├── RequestTooLarge           413  a body over the gateway's limit
    │   ├── Unauthenticated           401  unknown, revoked or expired key
    │   ├── ModelNotAllowed           403  the key may not use the model
    │   ├── ModelNotFound             404  no model of that name is configured
    │   ├── RateLimited               429  RPM / TPM / parallel limit (with retry-after)
    │   ├── BudgetExceeded            429  the key's USD budget is spent
    │   └── ClientClosed              499  the client left before the answer
    └── ServiceError
        ├── UpstreamError             the provider answered with an error (its status kept)
        └── UpstreamTimeout           504  the provider did not answer in time

Each class carries a `kind` (an UpstreamError's follows the provider's status), which
api/errors.py maps to the inbound API's own error shape (OpenAI's or Anthropic's) in
one place.
"""

from __future__ import annotations

from enum import Enum

from lamina import errors
from lamina.errors import ClientError, ServiceError


class ErrorKind(Enum):
    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    RATE_LIMIT = "rate_limit"
    BUDGET = "budget"
    UPSTREAM = "upstream"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"


class InvalidGatewayRequest(ClientError):
    code = "invalid_request_error"
    kind = ErrorKind.INVALID_REQUEST


class RequestTooLarge(errors.RequestTooLarge):
    code = "request_too_large"
    kind = ErrorKind.INVALID_REQUEST


class Unauthenticated(ClientError):
    code = "invalid_api_key"
    status = 401
    kind = ErrorKind.AUTHENTICATION


class ModelNotAllowed(ClientError):
    code = "model_not_allowed"
    status = 403
    kind = ErrorKind.PERMISSION


class ModelNotFound(ClientError):
    code = "model_not_found"
    status = 404
    kind = ErrorKind.NOT_FOUND


class RateLimited(ClientError):
    code = "rate_limit_exceeded"
    status = 429
    kind = ErrorKind.RATE_LIMIT

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(message, headers={"retry-after": str(seconds)})
        self.retry_after_s = retry_after_s


class BudgetExceeded(ClientError):
    code = "budget_exceeded"
    status = 429
    kind = ErrorKind.BUDGET


class ClientClosed(ClientError):
    code = "client_closed_request"
    status = 499
    kind = ErrorKind.INVALID_REQUEST


class UpstreamError(ServiceError):
    """The provider refused or failed; `status` is the provider's own status code."""

    code = "upstream_error"
    status = 502

    def __init__(self, message: str, *, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s

    @property
    def kind(self) -> ErrorKind:
        """What the provider's status means to the client (the error's wire type)."""
        if self.status in (503, 529):
            return ErrorKind.OVERLOADED
        if self.status == 429:
            return ErrorKind.RATE_LIMIT
        if 400 <= self.status < 500:
            return ErrorKind.INVALID_REQUEST  # the request's fault, as the provider said
        return ErrorKind.UPSTREAM

    @property
    def retryable(self) -> bool:
        # 408/409/429 and every 5xx may succeed on another try or another deployment;
        # other 4xx are the request's fault and would fail the same way everywhere.
        return self.status in (408, 409, 429) or self.status >= 500


class UpstreamTimeout(ServiceError):
    code = "upstream_timeout"
    status = 504
    kind = ErrorKind.TIMEOUT

    retryable = True
