"""Envelope encryption: each item sealed by its own data key, the data key wrapped.

A fresh 256-bit data key seals each item with AES-GCM; the data key is then wrapped
by lamina's master key, or by a customer KMS key when the owner chose one (a KMS
ciphertext, so disabling or deleting that key makes the item unreadable, as in AWS).
The blob (blob_format's "envelope" form) carries the wrapped key and names the
wrapping key, so opening needs only the blob and the same context.

The context (e.g. {"LambdaFunctionName": "f", "lamina:purpose": "environment"}) is
bound into both the item's and the data key's associated data: a blob copied to
another record fails to open instead of leaking one record's values into another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from lamina.secrets import blob_format
from lamina.secrets.blob_format import EnvelopeHeader, MalformedBlob, Wrapper
from lamina.secrets.errors import InvalidCiphertextException, SealedDataCorrupt
from lamina.secrets.master_key import MasterKey

DATA_KEY_BYTES = 32
_DATA_KEY_AD = b"lamina data key\x00"


class DataKeyWrapper(Protocol):
    """A KMS that wraps data keys; `KeyStore` is the one lamina has."""

    async def wrap_data_key(
        self, key_ref: str, data_key: bytes, context: Mapping[str, str]
    ) -> tuple[str, bytes]:
        """(ARN of the key used, wrapped data key); raises the KMS errors."""
        ...

    async def unwrap_data_key(self, wrapped: bytes, context: Mapping[str, str]) -> bytes: ...


class Envelope:
    def __init__(self, master: MasterKey, kms: DataKeyWrapper | None = None) -> None:
        self._master = master
        self._kms = kms

    async def seal(
        self, plaintext: bytes, context: Mapping[str, str], kms_key_id: str | None = None
    ) -> bytes:
        """Seal `plaintext` bound to `context`; `kms_key_id` (id, ARN or alias) wraps its key."""
        data_key = os.urandom(DATA_KEY_BYTES)
        encoded_context = blob_format.encode_context(context)
        if kms_key_id is None:
            wrapped = blob_format.seal(
                self._master.material, data_key, _DATA_KEY_AD + encoded_context
            )
            header = EnvelopeHeader(Wrapper.MASTER, self._master.key_id, wrapped)
        else:
            key_arn, wrapped = await self._require_kms().wrap_data_key(
                kms_key_id, data_key, context
            )
            header = EnvelopeHeader(Wrapper.KMS, key_arn, wrapped)
        header_bytes = header.encode()
        return header_bytes + blob_format.seal(data_key, plaintext, header_bytes + encoded_context)

    async def open(self, blob: bytes, context: Mapping[str, str]) -> bytes:
        """The plaintext of a sealed blob, if `context` is the one it was sealed with.

        A changed blob or another context is InvalidCiphertextException; a KMS-wrapped
        blob also fails with the KMS key's own error (disabled, pending deletion, gone).
        """
        try:
            header, header_bytes, sealed = blob_format.parse_envelope(blob)
        except MalformedBlob:
            raise InvalidCiphertextException("The sealed data is not a lamina envelope.") from None
        encoded_context = blob_format.encode_context(context)
        if header.wrapper is Wrapper.MASTER:
            if header.key_ref != self._master.key_id:
                raise SealedDataCorrupt(
                    f"The data was sealed with master key {header.key_ref}, not with this "
                    f"server's ({self._master.key_id}); was LAMINA_MASTER_KEY or master.key changed?"
                )
            try:
                data_key = blob_format.unseal(
                    self._master.material, header.wrapped_key, _DATA_KEY_AD + encoded_context
                )
            except MalformedBlob:
                raise InvalidCiphertextException(
                    "The sealed data does not open in this context."
                ) from None
        else:
            data_key = await self._require_kms().unwrap_data_key(header.wrapped_key, context)
        try:
            return blob_format.unseal(data_key, sealed, header_bytes + encoded_context)
        except MalformedBlob:
            raise InvalidCiphertextException(
                "The sealed data does not open in this context."
            ) from None

    @staticmethod
    def wrapping_key(blob: bytes) -> str | None:
        """The ARN of the KMS key wrapping `blob`'s data key, None for the master key."""
        try:
            header, _, _ = blob_format.parse_envelope(blob)
        except MalformedBlob:
            raise InvalidCiphertextException("The sealed data is not a lamina envelope.") from None
        return header.key_ref if header.wrapper is Wrapper.KMS else None

    def _require_kms(self) -> DataKeyWrapper:
        if self._kms is None:
            raise SealedDataCorrupt("A KMS key was named but this envelope has no key store.")
        return self._kms
