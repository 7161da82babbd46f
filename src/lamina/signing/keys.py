"""Signing keys: one ECDSA P-384 key pair per signing profile version.

`AWSLambda-SHA384-ECDSA` is the platform AWS Signer offers Lambda; lamina signs with
the same curve and hash. The private key leaves this module only as PKCS#8 DER for
the profile store to seal; the public key is stored in the clear (it is public).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PLATFORM_ID = "AWSLambda-SHA384-ECDSA"
PLATFORM_DISPLAY_NAME = "AWS Lambda"
SIGNATURE_ALGORITHM = "ECDSA_P384_SHA384"


def generate_key_pair() -> tuple[bytes, bytes]:
    """(private key as PKCS#8 DER, public key as SubjectPublicKeyInfo DER)."""
    private = ec.generate_private_key(ec.SECP384R1())
    private_der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_der, public_der


def sign(private_der: bytes, message: bytes) -> bytes:
    key = serialization.load_der_private_key(private_der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("a signing profile's key must be an ECDSA key")
    return key.sign(message, ec.ECDSA(hashes.SHA384()))


def verify(public_der: bytes, message: bytes, signature: bytes) -> bool:
    key = serialization.load_der_public_key(public_der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return True
