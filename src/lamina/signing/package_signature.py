"""The signed-package format: a zip carrying its own signature, as Lambda's do.

A signed package is an ordinary zip with one more entry, `.lamina-signature.json`
(the *envelope*). The envelope holds a *statement* — the exact bytes that were
signed, as base64 so no JSON re-encoding can change them — and the signature over
those bytes. The statement names the profile version that signed and carries
`codeDigest`, the SHA-384 of the package's *manifest*:

    lamina-code-manifest/1
    ["app.py", 420, 1234, "<sha384 of app.py's content, hex>"]
    ...                              one line per entry, in archive order

Each entry is bound by name, Unix mode, size and content; the signature entry itself
is left out. Compression and timestamps are not bound (they change nothing that
runs), but adding, removing, renaming, reordering, duplicating or changing any entry
changes the digest. Reading an entry checks the zip's CRC too, so a flipped byte in
the compressed data is caught even before the digest is compared.

Everything here is pure and shared by the server (verification) and `lamina sign`
(embedding); the signing itself happens on the server, where the key is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

SIGNATURE_ENTRY = ".lamina-signature.json"
ENVELOPE_FORMAT = "lamina-code-signature/1"
STATEMENT_FORMAT = "lamina-code-statement/1"
MANIFEST_HEADER = b"lamina-code-manifest/1\n"
# SignPayload's payloadFormat for a manifest digest: what `lamina sign` sends.
PAYLOAD_FORMAT = "application/vnd.lamina.code-manifest-sha384"
DIGEST_BYTES = 48  # SHA-384
_CHUNK = 1 << 20


class MalformedSignature(Exception):
    """The package's signature entry, or the zip around it, cannot be read."""


@dataclass(frozen=True, slots=True)
class Statement:
    """What a profile version attests: this code digest, signed at this time."""

    code_digest: str  # hex SHA-384 of the manifest
    profile_name: str
    profile_version: str
    profile_version_arn: str
    platform_id: str
    job_id: str
    signed_at: int  # epoch seconds
    expires_at: int  # epoch seconds: the profile's signature validity period

    def encode(self) -> bytes:
        document = {
            "format": STATEMENT_FORMAT,
            "digestAlgorithm": "SHA384",
            "codeDigest": self.code_digest,
            "profileName": self.profile_name,
            "profileVersion": self.profile_version,
            "profileVersionArn": self.profile_version_arn,
            "platformId": self.platform_id,
            "jobId": self.job_id,
            "signedAt": self.signed_at,
            "expiresAt": self.expires_at,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Statement:
        try:
            doc = json.loads(raw)
            if doc.get("format") != STATEMENT_FORMAT or doc.get("digestAlgorithm") != "SHA384":
                raise MalformedSignature("The signature statement is not a lamina code statement.")
            return cls(
                code_digest=_text(doc, "codeDigest"),
                profile_name=_text(doc, "profileName"),
                profile_version=_text(doc, "profileVersion"),
                profile_version_arn=_text(doc, "profileVersionArn"),
                platform_id=_text(doc, "platformId"),
                job_id=_text(doc, "jobId"),
                signed_at=int(doc["signedAt"]),
                expires_at=int(doc["expiresAt"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedSignature(f"The signature statement is malformed: {exc}") from None


@dataclass(frozen=True, slots=True)
class Envelope:
    statement_bytes: bytes
    signature: bytes

    @property
    def statement(self) -> Statement:
        return Statement.decode(self.statement_bytes)

    def encode(self) -> bytes:
        document = {
            "format": ENVELOPE_FORMAT,
            "statement": base64.b64encode(self.statement_bytes).decode(),
            "signature": base64.b64encode(self.signature).decode(),
        }
        return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def decode(cls, raw: bytes) -> Envelope:
        try:
            doc = json.loads(raw)
            if doc.get("format") != ENVELOPE_FORMAT:
                raise MalformedSignature(f"{SIGNATURE_ENTRY} is not a {ENVELOPE_FORMAT} envelope.")
            return cls(
                base64.b64decode(doc["statement"], validate=True),
                base64.b64decode(doc["signature"], validate=True),
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise MalformedSignature(f"{SIGNATURE_ENTRY} is malformed: {exc}") from None


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


@dataclass(frozen=True, slots=True)
class PackageContents:
    digest: bytes  # SHA-384 of the manifest
    envelope: Envelope | None  # None: the package is unsigned


def read_package(data: bytes) -> PackageContents:
    """The manifest digest of a zip and its envelope, if it has one.

    Raises MalformedSignature for an unreadable zip (bad CRC included) or for more
    than one signature entry: either way the package is not what was signed.
    """
    manifest = hashlib.sha384(MANIFEST_HEADER)
    envelopes: list[bytes] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.filename == SIGNATURE_ENTRY:
                    envelopes.append(archive.read(info))
                    continue
                content = hashlib.sha384()
                with archive.open(info) as entry:
                    while chunk := entry.read(_CHUNK):
                        content.update(chunk)
                line = [
                    info.filename,
                    info.external_attr >> 16,
                    info.file_size,
                    content.hexdigest(),
                ]
                manifest.update(json.dumps(line).encode() + b"\n")
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        OSError,
        EOFError,
        ValueError,
    ) as exc:
        raise MalformedSignature(f"The package cannot be read: {exc}") from None
    if len(envelopes) > 1:
        raise MalformedSignature(f"The package has {len(envelopes)} {SIGNATURE_ENTRY} entries.")
    envelope = Envelope.decode(envelopes[0]) if envelopes else None
    return PackageContents(manifest.digest(), envelope)


def embed(data: bytes, envelope: Envelope) -> bytes:
    """`data` with `envelope` as its signature entry (replacing an older one).

    Entries keep their names, modes, order and contents, so the manifest — and with
    it the signature — is the one computed before signing.
    """
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            if info.filename != SIGNATURE_ENTRY:
                target.writestr(info, source.read(info))
        entry = zipfile.ZipInfo(SIGNATURE_ENTRY, date_time=(1980, 1, 1, 0, 0, 0))
        entry.external_attr = 0o100644 << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        target.writestr(entry, envelope.encode())
    return out.getvalue()
