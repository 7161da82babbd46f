"""IAM's own error codes, as the IAM and STS APIs return them.

LaminaError
├── NoSuchEntity              404  a user, role, key or policy that does not exist
├── EntityAlreadyExists       409  a name already taken
├── DeleteConflict            409  an entity that still has keys, policies or attachments
├── MalformedPolicyDocument   400  a policy that does not parse or breaks the grammar
├── IamValidationError        400  a name, path or number outside IAM's limits
└── AccessDenied (lamina)     403  raised by `Authorizer`, worded as AWS words it
"""

from __future__ import annotations

from lamina.errors import ClientError


class NoSuchEntity(ClientError):
    code = "NoSuchEntity"
    status = 404


class EntityAlreadyExists(ClientError):
    code = "EntityAlreadyExists"
    status = 409


class DeleteConflict(ClientError):
    code = "DeleteConflict"
    status = 409


class LimitExceeded(ClientError):
    code = "LimitExceeded"
    status = 409


class MalformedPolicyDocument(ClientError):
    code = "MalformedPolicyDocument"
    status = 400


class IamValidationError(ClientError):
    # IAM and STS say "ValidationError", not Lambda's "ValidationException".
    code = "ValidationError"
    status = 400
