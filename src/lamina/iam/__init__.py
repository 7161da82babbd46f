"""Identity and access: users, keys, roles, policies, temporary credentials, and the
policy evaluation every request goes through.

    IamDirectory   state (in memory, written through `IamStore`), credential lookup,
                   `authorize`, role sessions
    Authorizer     `check(principal, action, resource, context)`: raises AWS's 403
    PolicyParser   policy grammar -> compiled `PolicyDocument`
    evaluate       the evaluation algorithm (explicit deny > allow > implicit deny)

No web framework and no environment reads here: services/iam.py and services/sts.py
are the wire side.
"""

from lamina.iam.authorizer import Authorizer, denial_message
from lamina.iam.directory import IamDirectory, RootKey
from lamina.iam.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    IamValidationError,
    LimitExceeded,
    MalformedPolicyDocument,
    NoSuchEntity,
)
from lamina.iam.evaluation import Decision, Reason
from lamina.iam.model import (
    DEFAULT_ACCOUNT,
    Credential,
    OwnerKind,
    Principal,
    PrincipalKind,
    TemporaryCredentials,
)
from lamina.iam.policy import PolicyDocument, PolicyKind, PolicyParser
from lamina.iam.store import IamStore

__all__ = [
    "DEFAULT_ACCOUNT",
    "Authorizer",
    "Credential",
    "Decision",
    "DeleteConflict",
    "EntityAlreadyExists",
    "IamDirectory",
    "IamStore",
    "IamValidationError",
    "LimitExceeded",
    "MalformedPolicyDocument",
    "NoSuchEntity",
    "OwnerKind",
    "PolicyDocument",
    "PolicyKind",
    "PolicyParser",
    "Principal",
    "PrincipalKind",
    "Reason",
    "RootKey",
    "TemporaryCredentials",
    "denial_message",
]
