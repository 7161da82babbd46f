"""EnvironmentCipher: a function's environment variables, sealed at rest.

The registry stores `seal(...)`'s bytes instead of the variables and calls `open`
where it needs them (starting an environment, GetFunctionConfiguration). The blob is
bound to the function's name, as Lambda binds its KMS ciphertext to the encryption
context {"LambdaFunctionName": name}: one function's blob does not open as another's.

Failures are reported as Lambda reports them: a bad KMSKeyArn at configuration time
is InvalidParameterValueException; a key that stopped working by the time the
function runs is KMSDisabledException / KMSNotFoundException / KMSInvalidStateException
/ KMSAccessDeniedException (502), the codes Lambda's Invoke uses.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from lamina.errors import InvalidParameterValue, LaminaError
from lamina.secrets.envelope import Envelope
from lamina.secrets.errors import (
    DisabledException,
    InvalidCiphertextException,
    KmsError,
    KMSInvalidStateException,
    NotFoundException,
    SealedDataCorrupt,
)

PURPOSE = "environment"


def environment_context(function_name: str) -> dict[str, str]:
    return {"LambdaFunctionName": function_name, "lamina:purpose": PURPOSE}


class EnvironmentCipher:
    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope

    async def seal(
        self,
        function_name: str,
        variables: Mapping[str, str],
        kms_key_arn: str | None = None,
    ) -> bytes:
        """The sealed form of `variables`; with `kms_key_arn`, only that key opens it."""
        plaintext = orjson.dumps(dict(variables), option=orjson.OPT_SORT_KEYS)
        try:
            return await self._envelope.seal(
                plaintext, environment_context(function_name), kms_key_arn or None
            )
        except KmsError as exc:
            raise InvalidParameterValue(
                "Lambda was unable to configure access to your environment variables because "
                f"the KMS key is invalid. KMS Exception: {exc.code} KMS Message: {exc.message}"
            ) from None

    async def open(self, function_name: str, blob: bytes) -> dict[str, str]:
        try:
            plaintext = await self._envelope.open(blob, environment_context(function_name))
        except InvalidCiphertextException:
            # The context is fixed by the function's name, so a blob that does not open
            # was altered at rest or copied from another function: lamina's fault to
            # report, not a KMS setting the caller could fix.
            raise SealedDataCorrupt(
                f"The stored environment variables of function {function_name} do not open."
            ) from None
        except KmsError as exc:
            raise _lambda_kms_error(exc) from None
        variables = orjson.loads(plaintext)
        if not isinstance(variables, dict):
            raise LaminaError("Sealed environment variables are not an object.")
        return {str(k): str(v) for k, v in variables.items()}

    @staticmethod
    def kms_key_arn(blob: bytes) -> str | None:
        """The customer key a sealed environment uses (Lambda's KMSKeyArn), if any."""
        return Envelope.wrapping_key(blob)


def _lambda_kms_error(exc: KmsError) -> LaminaError:
    if isinstance(exc, DisabledException):
        code, why = "KMSDisabledException", "the KMS key used is disabled"
    elif isinstance(exc, NotFoundException):
        code, why = "KMSNotFoundException", "the KMS key was not found"
    elif isinstance(exc, KMSInvalidStateException):
        code, why = "KMSInvalidStateException", "the KMS key is in an invalid state for Decrypt"
    else:
        code, why = "KMSAccessDeniedException", "KMS access was denied"
    return LaminaError(
        f"Lambda was unable to decrypt the environment variables because {why}. Please check "
        f"the function's KMS key settings. KMS Exception: {exc.code} KMS Message: {exc.message}",
        code=code,
        status=502,
    )
