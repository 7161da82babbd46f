"""Code signing: profiles with real key pairs, the signed-package format, verification.

    package_signature  the `.lamina-signature.json` entry a signed zip carries
    keys               ECDSA P-384 key pairs, signing and verifying
    profiles           signing profiles (AWS Signer's model) and their lifecycle
    configs            Lambda's code-signing configs and the functions using them
    verification       Lambda's checks: integrity, mismatch, revocation, expiry

services/signer.py and services/lambda_/code_signing.py put the wire shapes on top.
"""
