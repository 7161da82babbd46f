"""The KMS and Secrets Manager refusals, named exactly as botocore's models name them.

Both services answer every client error with HTTP 400 (unlike Lambda's 404 for a
missing resource), so these classes are siblings under `ClientError`, not subclasses
of `ResourceNotFound` and friends. Messages name resources, never secret values.
"""

from __future__ import annotations

from lamina.errors import ClientError, ServiceError


class KmsError(ClientError):
    """Base of KMS refusals."""


class NotFoundException(KmsError):
    code = "NotFoundException"


class DisabledException(KmsError):
    code = "DisabledException"


class KMSInvalidStateException(KmsError):
    code = "KMSInvalidStateException"


class InvalidCiphertextException(KmsError):
    code = "InvalidCiphertextException"


class IncorrectKeyException(KmsError):
    code = "IncorrectKeyException"


class AlreadyExistsException(KmsError):
    code = "AlreadyExistsException"


class InvalidAliasNameException(KmsError):
    code = "InvalidAliasNameException"


class InvalidMarkerException(KmsError):
    code = "InvalidMarkerException"


class KmsValidationException(KmsError):
    code = "ValidationException"


class UnsupportedOperationException(KmsError):
    code = "UnsupportedOperationException"


class SecretsError(ClientError):
    """Base of Secrets Manager refusals."""


class ResourceNotFoundException(SecretsError):
    code = "ResourceNotFoundException"


class ResourceExistsException(SecretsError):
    code = "ResourceExistsException"


class InvalidParameterException(SecretsError):
    code = "InvalidParameterException"


class InvalidRequestException(SecretsError):
    code = "InvalidRequestException"


class InvalidNextTokenException(SecretsError):
    code = "InvalidNextTokenException"


class EncryptionFailure(SecretsError):
    code = "EncryptionFailure"


class DecryptionFailure(SecretsError):
    code = "DecryptionFailure"


class SealedDataCorrupt(ServiceError):
    """A blob lamina sealed itself no longer opens: tampering, or the wrong master key."""

    code = "InternalServiceError"
