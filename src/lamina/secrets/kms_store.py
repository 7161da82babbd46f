"""KeyStore: durable symmetric KMS keys, and the cryptography done with them.

Keys are AES-256 material generated here and stored wrapped by the master key. A KMS
ciphertext (blob_format's "kms" form) names its key and material version, so Decrypt
needs no KeyId, like AWS's; its EncryptionContext is part of the GCM associated data,
so decrypting with another context fails as InvalidCiphertextException.

Each call reads the key's row (its state may have changed on another node); unwrapped
material is cached per (key, version) because a version's material never changes.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from sqlalchemy import MetaData, RowMapping, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lamina.secrets import blob_format
from lamina.secrets.blob_format import KmsHeader, MalformedBlob
from lamina.secrets.envelope import Envelope
from lamina.secrets.errors import (
    AlreadyExistsException,
    IncorrectKeyException,
    InvalidCiphertextException,
    KmsValidationException,
    NotFoundException,
    SealedDataCorrupt,
    UnsupportedOperationException,
)
from lamina.secrets.kms_model import (
    ENCRYPT_DECRYPT,
    MAX_PLAINTEXT_BYTES,
    SYMMETRIC_DEFAULT,
    DataKey,
    Decrypted,
    KeyAction,
    KeyState,
    KmsAlias,
    KmsKey,
    alias_arn,
    check_alias_name,
    check_pending_window,
    key_arn,
    new_key_id,
    parse_key_ref,
)
from lamina.secrets.kms_tables import kms_aliases, kms_key_materials, kms_keys, kms_metadata
from lamina.secrets.master_key import MasterKey

KEY_BYTES = 32
DATA_KEY_SPECS = {"AES_256": 32, "AES_128": 16}
_DAY_S = 86_400.0


class _Expired(NotFoundException):
    """An item whose deletion window has ended: not found, and due to be purged."""

    def __init__(self, message: str, ident: str) -> None:
        super().__init__(message)
        self.ident = ident


class KeyStore:
    metadata: ClassVar[MetaData] = kms_metadata

    def __init__(
        self,
        engine: AsyncEngine,
        master: MasterKey,
        account_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        # Material is stored as a master-key envelope: self-describing (format version,
        # master key fingerprint), so a master key rotation can re-wrap it later.
        self._sealer = Envelope(master)
        self._account_id = account_id
        self._clock = clock
        self._materials: dict[tuple[str, int], bytes] = {}

    # -- key lifecycle ----------------------------------------------------------------

    async def create_key(
        self,
        *,
        region: str,
        description: str = "",
        key_usage: str | None = None,
        key_spec: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> KmsKey:
        # Only symmetric encryption keys exist here; asymmetric and HMAC keys would
        # need Sign/Verify/GenerateMac, which lamina does not offer.
        if (key_usage or ENCRYPT_DECRYPT) != ENCRYPT_DECRYPT:
            raise UnsupportedOperationException(f"KeyUsage {key_usage} is not supported.")
        if (key_spec or SYMMETRIC_DEFAULT) != SYMMETRIC_DEFAULT:
            raise UnsupportedOperationException(f"KeySpec {key_spec} is not supported.")
        key_id = new_key_id()
        now = self._clock()
        material = os.urandom(KEY_BYTES)
        wrapped = await self._wrap_material(key_id, 1, material)
        async with self._transaction() as conn:
            await conn.execute(
                insert(kms_keys).values(
                    key_id=key_id,
                    account_id=self._account_id,
                    region=region,
                    description=description,
                    key_usage=ENCRYPT_DECRYPT,
                    key_spec=SYMMETRIC_DEFAULT,
                    state=KeyState.ENABLED.value,
                    created_at=now,
                    material_version=1,
                    tags=orjson.dumps(dict(tags or {})).decode(),
                )
            )
            await conn.execute(
                insert(kms_key_materials).values(key_id=key_id, version=1, wrapped=wrapped)
            )
        self._materials[(key_id, 1)] = material
        return await self.describe_key(key_id)

    async def describe_key(self, key_ref: str) -> KmsKey:
        async with self._transaction() as conn:
            return await self._load(conn, key_ref)

    async def list_keys(self) -> list[KmsKey]:
        async with self._transaction() as conn:
            rows = (await conn.execute(select(kms_keys).order_by(kms_keys.c.created_at))).all()
            keys = [self._key_from_row(row._mapping) for row in rows]
            live = [key for key in keys if not self._expired(key)]
            for key in keys:
                if self._expired(key):
                    await self._purge(conn, key.key_id)
        return live

    async def enable_key(self, key_ref: str) -> KmsKey:
        return await self._transition(key_ref, KeyAction.ENABLE)

    async def disable_key(self, key_ref: str) -> KmsKey:
        return await self._transition(key_ref, KeyAction.DISABLE)

    async def cancel_key_deletion(self, key_ref: str) -> KmsKey:
        return await self._transition(key_ref, KeyAction.CANCEL_DELETION)

    async def schedule_key_deletion(self, key_ref: str, pending_window_days: int | None) -> KmsKey:
        days = check_pending_window(pending_window_days)
        deletion_at = self._clock() + days * _DAY_S
        return await self._transition(
            key_ref,
            KeyAction.SCHEDULE_DELETION,
            deletion_at=deletion_at,
            pending_days=days,
        )

    async def purge_expired(self) -> int:
        """Delete every key whose deletion window has ended; how many were."""
        now = self._clock()
        async with self._transaction() as conn:
            ids = (
                await conn.execute(
                    select(kms_keys.c.key_id).where(
                        kms_keys.c.state == KeyState.PENDING_DELETION.value,
                        kms_keys.c.deletion_at <= now,
                    )
                )
            ).scalars()
            expired = list(ids)
            for key_id in expired:
                await self._purge(conn, key_id)
        return len(expired)

    # -- aliases ----------------------------------------------------------------------

    async def create_alias(self, alias_name: str, target_key_ref: str) -> KmsAlias:
        check_alias_name(alias_name)
        async with self._transaction() as conn:
            key = await self._load(conn, target_key_ref)
            if key.state is KeyState.PENDING_DELETION:
                key.check_usable()
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(kms_aliases).values(
                            alias_name=alias_name,
                            key_id=key.key_id,
                            region=key.region,
                            created_at=self._clock(),
                        )
                    )
            except IntegrityError:
                raise AlreadyExistsException(
                    f"An alias with the name {alias_arn(key.region, self._account_id, alias_name)} already exists"
                ) from None
        return KmsAlias(
            alias_name,
            alias_arn(key.region, self._account_id, alias_name),
            key.key_id,
            _dt(self._clock()),
        )

    async def delete_alias(self, alias_name: str) -> None:
        async with self._transaction() as conn:
            deleted = await conn.execute(
                delete(kms_aliases).where(kms_aliases.c.alias_name == alias_name)
            )
        if not deleted.rowcount:
            raise NotFoundException(f"Alias {alias_name} is not found.")

    async def list_aliases(self, key_ref: str | None = None) -> list[KmsAlias]:
        async with self._transaction() as conn:
            # Aliases of keys whose deletion window ended are gone, purged or not yet.
            live = or_(kms_keys.c.deletion_at.is_(None), kms_keys.c.deletion_at > self._clock())
            query = (
                select(kms_aliases)
                .join(kms_keys, kms_keys.c.key_id == kms_aliases.c.key_id)
                .where(live)
                .order_by(kms_aliases.c.alias_name)
            )
            if key_ref is not None:
                key = await self._load(conn, key_ref)
                query = query.where(kms_aliases.c.key_id == key.key_id)
            rows = (await conn.execute(query)).all()
        return [
            KmsAlias(
                row.alias_name,
                alias_arn(row.region, self._account_id, row.alias_name),
                row.key_id,
                _dt(row.created_at),
            )
            for row in rows
        ]

    # -- cryptography -----------------------------------------------------------------

    async def encrypt(
        self, key_ref: str, plaintext: bytes, context: Mapping[str, str] | None = None
    ) -> tuple[bytes, KmsKey]:
        """(ciphertext blob, key) for `plaintext` under the key `key_ref` names."""
        if not 1 <= len(plaintext) <= MAX_PLAINTEXT_BYTES:
            raise KmsValidationException(
                f"Plaintext must be between 1 and {MAX_PLAINTEXT_BYTES} bytes long."
            )
        key = await self.describe_key(key_ref)
        key.check_usable()
        material = await self._material(key.key_id, key.material_version)
        header = KmsHeader(key.key_id, key.material_version).encode()
        associated = header + blob_format.encode_context(context or {})
        return header + blob_format.seal(material, plaintext, associated), key

    async def decrypt(
        self,
        ciphertext: bytes,
        context: Mapping[str, str] | None = None,
        key_ref: str | None = None,
    ) -> Decrypted:
        try:
            header, header_bytes, sealed = blob_format.parse_kms(ciphertext)
        except MalformedBlob:
            raise InvalidCiphertextException(
                "The ciphertext is not a KMS ciphertext blob."
            ) from None
        key = await self.describe_key(header.key_id)
        if key_ref is not None:
            named = await self.describe_key(key_ref)
            if named.key_id != key.key_id:
                raise IncorrectKeyException(
                    "The key ID in the request does not identify a CMK that can perform this operation."
                )
        key.check_usable()
        material = await self._material(key.key_id, header.material_version)
        associated = header_bytes + blob_format.encode_context(context or {})
        try:
            plaintext = blob_format.unseal(material, sealed, associated)
        except MalformedBlob:
            # Deliberately one message for a changed blob and a wrong context: which of
            # the two it was would tell an attacker something.
            raise InvalidCiphertextException(
                "The ciphertext is invalid or its EncryptionContext does not match."
            ) from None
        return Decrypted(plaintext, key)

    async def generate_data_key(
        self,
        key_ref: str,
        context: Mapping[str, str] | None = None,
        *,
        number_of_bytes: int | None = None,
        key_spec: str | None = None,
    ) -> DataKey:
        size = _data_key_size(number_of_bytes, key_spec)
        plaintext = os.urandom(size)
        ciphertext, key = await self.encrypt(key_ref, plaintext, context)
        return DataKey(plaintext, ciphertext, key)

    async def re_encrypt(
        self,
        ciphertext: bytes,
        destination_key_ref: str,
        *,
        source_context: Mapping[str, str] | None = None,
        destination_context: Mapping[str, str] | None = None,
        source_key_ref: str | None = None,
    ) -> tuple[bytes, KmsKey, KmsKey]:
        """(new ciphertext, source key, destination key); the plaintext never leaves."""
        decrypted = await self.decrypt(ciphertext, source_context, source_key_ref)
        blob, destination = await self.encrypt(
            destination_key_ref, decrypted.plaintext, destination_context
        )
        return blob, decrypted.key, destination

    # -- what Envelope needs (its DataKeyWrapper protocol) -----------------------------

    async def wrap_data_key(
        self, key_ref: str, data_key: bytes, context: Mapping[str, str]
    ) -> tuple[str, bytes]:
        blob, key = await self.encrypt(key_ref, data_key, context)
        return key.arn, blob

    async def unwrap_data_key(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        return (await self.decrypt(wrapped, context)).plaintext

    # -- internals --------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction; one that found an expired item purges it in a second one
        (the first rolls back with the not-found error it raises)."""
        try:
            async with self._engine.begin() as conn:
                yield conn
        except _Expired as expired:
            async with self._engine.begin() as conn:
                await self._purge(conn, expired.ident)
            raise

    async def _transition(self, key_ref: str, action: KeyAction, **changes: Any) -> KmsKey:
        async with self._transaction() as conn:
            key = await self._load(conn, key_ref)
            state = key.next_state(action)
            if state is not KeyState.PENDING_DELETION:
                changes = {"deletion_at": None, "pending_days": None}
            await conn.execute(
                update(kms_keys)
                .where(kms_keys.c.key_id == key.key_id)
                .values(state=state.value, **changes)
            )
            return await self._load(conn, key.key_id)

    async def _load(self, conn: AsyncConnection, key_ref: str) -> KmsKey:
        ref = parse_key_ref(key_ref)
        key_id = ref.key_id
        if ref.alias_name is not None:
            key_id = (
                await conn.execute(
                    select(kms_aliases.c.key_id).where(kms_aliases.c.alias_name == ref.alias_name)
                )
            ).scalar()
            if key_id is None:
                raise NotFoundException(f"Alias {key_ref} is not found.")
        row = (await conn.execute(select(kms_keys).where(kms_keys.c.key_id == key_id))).first()
        if row is None:
            raise NotFoundException(f"Key '{key_ref}' does not exist")
        key = self._key_from_row(row._mapping)
        if self._expired(key):
            raise _Expired(f"Key '{key.arn}' does not exist", key.key_id)
        return key

    def _expired(self, key: KmsKey) -> bool:
        return (
            key.state is KeyState.PENDING_DELETION
            and key.deletion_date is not None
            and key.deletion_date.timestamp() <= self._clock()
        )

    async def _purge(self, conn: AsyncConnection, key_id: str) -> None:
        # Children first: SQLite enforces the cascades only with its pragma on.
        for table in (kms_aliases, kms_key_materials):
            await conn.execute(delete(table).where(table.c.key_id == key_id))
        await conn.execute(delete(kms_keys).where(kms_keys.c.key_id == key_id))
        for cached in [k for k in self._materials if k[0] == key_id]:
            del self._materials[cached]

    async def _material(self, key_id: str, version: int) -> bytes:
        cached = self._materials.get((key_id, version))
        if cached is not None:
            return cached
        async with self._transaction() as conn:
            wrapped = (
                await conn.execute(
                    select(kms_key_materials.c.wrapped).where(
                        kms_key_materials.c.key_id == key_id,
                        kms_key_materials.c.version == version,
                    )
                )
            ).scalar()
        if wrapped is None:
            raise InvalidCiphertextException(
                "The ciphertext refers to key material that does not exist."
            )
        try:
            material = await self._sealer.open(bytes(wrapped), _material_context(key_id, version))
        except SealedDataCorrupt:
            raise  # names the master key it was sealed with
        except InvalidCiphertextException:
            raise SealedDataCorrupt(
                f"The stored material of KMS key {key_id} was altered or belongs to another key."
            ) from None
        self._materials[(key_id, version)] = material
        return material

    async def _wrap_material(self, key_id: str, version: int, material: bytes) -> bytes:
        return await self._sealer.seal(material, _material_context(key_id, version))

    def _key_from_row(self, row: RowMapping) -> KmsKey:
        deletion_at = row["deletion_at"]
        return KmsKey(
            key_id=row["key_id"],
            arn=key_arn(row["region"], row["account_id"], row["key_id"]),
            account_id=row["account_id"],
            region=row["region"],
            description=row["description"],
            key_usage=row["key_usage"],
            key_spec=row["key_spec"],
            state=KeyState(row["state"]),
            created=_dt(row["created_at"]),
            material_version=row["material_version"],
            deletion_date=_dt(deletion_at) if deletion_at is not None else None,
            pending_window_days=row["pending_days"],
            tags=orjson.loads(row["tags"]),
        )


def _material_context(key_id: str, version: int) -> dict[str, str]:
    # Binds wrapped material to its row: swapping two keys' materials fails to open.
    return {"lamina:kms-key": key_id, "lamina:material-version": str(version)}


def _data_key_size(number_of_bytes: int | None, key_spec: str | None) -> int:
    if (number_of_bytes is None) == (key_spec is None):
        raise KmsValidationException("Please specify either number of bytes or key spec.")
    if key_spec is not None:
        if key_spec not in DATA_KEY_SPECS:
            raise KmsValidationException(f"KeySpec {key_spec} is not one of AES_256, AES_128.")
        return DATA_KEY_SPECS[key_spec]
    assert number_of_bytes is not None
    if not 1 <= number_of_bytes <= 1024:
        raise KmsValidationException("NumberOfBytes must be between 1 and 1024.")
    return number_of_bytes


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
