"""The versioned binary formats of everything lamina seals, and the AES-GCM they use.

Every sealed blob starts with a 4-byte magic and a 1-byte format version, so a reader
knows what it holds and a later format (new algorithm, rotated keys) can sit next to
this one. The header that follows names the key that opens the blob; the blob ends
with a 12-byte nonce and the AES-256-GCM ciphertext with its 16-byte tag:

    envelope  "LMNE" 01 | wrapper u8 | key_ref str16 | wrapped data key bytes16 | nonce | ct
    kms       "LMNK" 01 | key_id str16 | material_version u32 | nonce | ct

The associated data of the GCM seal is the whole header plus the canonical encoding
of the caller's context (function name, secret ARN, KMS EncryptionContext), so
neither a changed header nor a blob moved to another record opens.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENVELOPE_MAGIC = b"LMNE"
KMS_MAGIC = b"LMNK"
FORMAT_V1 = 1
NONCE_BYTES = 12
TAG_BYTES = 16


class MalformedBlob(Exception):
    """Not a blob lamina sealed, or one that was altered or opened with the wrong context."""


class Wrapper(IntEnum):
    """Which kind of key wraps an envelope's data key."""

    MASTER = 0  # lamina's master key; key_ref is its fingerprint
    KMS = 1  # a customer KMS key; key_ref is its ARN, the wrapped key a KMS ciphertext


def encode_context(context: Mapping[str, str]) -> bytes:
    """A canonical, unambiguous encoding: sorted pairs, each string length-prefixed."""
    out = bytearray(struct.pack(">I", len(context)))
    for key in sorted(context):
        for text in (key, context[key]):
            raw = text.encode("utf-8")
            out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """nonce || AES-256-GCM(plaintext) with its tag. Random 96-bit nonces are safe for
    far more messages than one key ever seals here (data keys seal exactly one)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def unseal(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise MalformedBlob("sealed data is too short")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    except InvalidTag:
        raise MalformedBlob("authentication failed") from None


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    wrapper: Wrapper
    key_ref: str
    wrapped_key: bytes

    def encode(self) -> bytes:
        return (
            ENVELOPE_MAGIC
            + bytes([FORMAT_V1, self.wrapper])
            + _str16(self.key_ref)
            + _bytes16(self.wrapped_key)
        )


@dataclass(frozen=True, slots=True)
class KmsHeader:
    key_id: str
    material_version: int

    def encode(self) -> bytes:
        return (
            KMS_MAGIC
            + bytes([FORMAT_V1])
            + _str16(self.key_id)
            + struct.pack(">I", self.material_version)
        )


def parse_envelope(blob: bytes) -> tuple[EnvelopeHeader, bytes, bytes]:
    """(header, header bytes, sealed rest) of an envelope blob."""
    reader = _Reader(blob)
    reader.expect(ENVELOPE_MAGIC)
    try:
        wrapper = Wrapper(reader.u8())
    except ValueError:
        raise MalformedBlob("unknown key wrapper") from None
    header = EnvelopeHeader(wrapper, reader.str16(), reader.bytes16())
    return header, blob[: reader.offset], blob[reader.offset :]


def parse_kms(blob: bytes) -> tuple[KmsHeader, bytes, bytes]:
    """(header, header bytes, sealed rest) of a KMS ciphertext blob."""
    reader = _Reader(blob)
    reader.expect(KMS_MAGIC)
    header = KmsHeader(reader.str16(), reader.u32())
    return header, blob[: reader.offset], blob[reader.offset :]


def _str16(text: str) -> bytes:
    return _bytes16(text.encode("utf-8"))


def _bytes16(raw: bytes) -> bytes:
    if len(raw) > 0xFFFF:
        raise ValueError("header field longer than 65535 bytes")
    return struct.pack(">H", len(raw)) + raw


class _Reader:
    """Bounds-checked reads of a header; any overrun is a MalformedBlob."""

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self.offset = 0

    def take(self, n: int) -> bytes:
        end = self.offset + n
        if end > len(self._blob):
            raise MalformedBlob("truncated header")
        chunk = self._blob[self.offset : end]
        self.offset = end
        return chunk

    def expect(self, magic: bytes) -> None:
        if self.take(len(magic)) != magic:
            raise MalformedBlob("not a lamina blob of this kind")
        if self.u8() != FORMAT_V1:
            raise MalformedBlob("unsupported format version")

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def bytes16(self) -> bytes:
        (length,) = struct.unpack(">H", self.take(2))
        return self.take(int(length))

    def str16(self) -> str:
        try:
            return self.bytes16().decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedBlob("header text is not UTF-8") from None
