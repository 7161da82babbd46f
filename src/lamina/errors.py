"""One exception tree for everything lamina refuses or fails at.

    LaminaError                      code, message, HTTP status; rendered by protocols/
    ├── ClientError (4xx)
    │   ├── ValidationError          400 ValidationException
    │   ├── InvalidParameterValue    400 InvalidParameterValueException
    │   ├── InvalidRequestContent    400 InvalidRequestContentException
    │   ├── AccessDenied             403 AccessDeniedException
    │   ├── ResourceNotFound         404 ResourceNotFoundException
    │   ├── ResourceConflict         409 ResourceConflictException
    │   ├── PreconditionFailed       412 PreconditionFailedException
    │   ├── RequestTooLarge          413 RequestTooLargeException
    │   └── TooManyRequests          429 TooManyRequestsException
    └── ServiceError (5xx)           500 ServiceException

The AWS error code is the class's `code`; protocols/ maps an error to the wire shape
the client expects (rest-json header + body, json `__type`, query XML) in one place.
Engine packages raise these; they never build HTTP responses themselves.
"""

from __future__ import annotations

from collections.abc import Mapping


class LaminaError(Exception):
    """Base of every error lamina reports to a client."""

    code: str = "ServiceException"
    status: int = 500
    sender_fault: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        # Extra members of the error shape (e.g. Lambda's `Reason`), rendered in the body.
        self.fields: Mapping[str, object] = fields or {}
        self.headers: Mapping[str, str] = headers or {}


class ClientError(LaminaError):
    code = "InvalidRequestException"
    status = 400
    sender_fault = True


class ValidationError(ClientError):
    code = "ValidationException"


class InvalidParameterValue(ClientError):
    code = "InvalidParameterValueException"


class InvalidRequestContent(ClientError):
    code = "InvalidRequestContentException"


class AccessDenied(ClientError):
    code = "AccessDeniedException"
    status = 403


class ResourceNotFound(ClientError):
    code = "ResourceNotFoundException"
    status = 404


class ResourceConflict(ClientError):
    code = "ResourceConflictException"
    status = 409


class PreconditionFailed(ClientError):
    code = "PreconditionFailedException"
    status = 412


class RequestTooLarge(ClientError):
    code = "RequestTooLargeException"
    status = 413


class TooManyRequests(ClientError):
    code = "TooManyRequestsException"
    status = 429


class ServiceError(LaminaError):
    code = "ServiceException"
    status = 500
