"""Secrets at rest: the master key, envelope encryption, KMS keys and Secrets Manager.

    MasterKey / load_or_create_master_key   the key-encryption key (file or setting)
    Envelope                                per-item data keys, wrapped by the master
                                            key or a customer KMS key
    EnvironmentCipher                       a function's environment variables, sealed
    KeyStore                                KMS-compatible symmetric keys (durable)
    SecretStore                             Secrets Manager-compatible secrets (durable)

Nothing here imports the web framework or protocols/; services/kms.py and
services/secretsmanager.py put the AWS wire shapes on top.
"""

from lamina.secrets.envelope import DataKeyWrapper, Envelope
from lamina.secrets.environment import EnvironmentCipher
from lamina.secrets.kms_store import KeyStore
from lamina.secrets.master_key import (
    MasterKey,
    MasterKeyError,
    load_or_create_master_key,
    master_key_from_base64,
)
from lamina.secrets.secret_listing import ListFilter
from lamina.secrets.secret_model import SecretValue
from lamina.secrets.secret_store import SecretStore

__all__ = [
    "DataKeyWrapper",
    "Envelope",
    "EnvironmentCipher",
    "KeyStore",
    "ListFilter",
    "MasterKey",
    "MasterKeyError",
    "SecretStore",
    "SecretValue",
    "load_or_create_master_key",
    "master_key_from_base64",
]
