"""IAM's durable state: one table per entity, written before a change is acknowledged.

The directory keeps everything in memory (requests are authorised without SQL) and
writes through this store; `load` rebuilds that memory at start. Each entity class
in `model.py` maps to one table whose columns are its fields, so a write is "put
this record" or "delete the record with this key", several of them in one transaction.

Secret access keys must be readable (SigV4 signs with the secret itself), so they
cannot be hashed; given a `SecretSealer` (lamina.secrets.Envelope), the store keeps
them envelope-encrypted, bound to their access key id, and opens them at load.
Without one they are stored as given (rows say which: sealed text starts "sealed:").
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, and_, delete, insert
from sqlalchemy import select as sql_select
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.iam.model import (
    AccessKey,
    Attachment,
    InlinePolicy,
    ManagedPolicy,
    Role,
    RoleSession,
    User,
)

Entity = User | AccessKey | Role | InlinePolicy | ManagedPolicy | Attachment | RoleSession


@dataclass(frozen=True, slots=True)
class Put:
    record: Entity


@dataclass(frozen=True, slots=True)
class Delete:
    kind: type[Entity]
    key: dict[str, str] = field(default_factory=dict)  # primary-key columns


Change = Put | Delete
_SEALED = "sealed:"


class SecretSealer(Protocol):
    """Envelope encryption bound to a context; `lamina.secrets.Envelope` is one."""

    async def seal(self, plaintext: bytes, context: Mapping[str, str]) -> bytes: ...

    async def open(self, blob: bytes, context: Mapping[str, str]) -> bytes: ...


class SealedSecretUnreadable(Exception):
    """A sealed secret was found but this store has no sealer to open it."""


@dataclass(slots=True)
class Snapshot:
    users: list[User]
    access_keys: list[AccessKey]
    roles: list[Role]
    inline_policies: list[InlinePolicy]
    managed_policies: list[ManagedPolicy]
    attachments: list[Attachment]
    sessions: list[RoleSession]


def _tables(metadata: MetaData) -> dict[type[Entity], Table]:
    def s(name: str, primary: bool = False) -> Column[Any]:
        return Column(name, String(512), primary_key=primary, nullable=False)

    return {
        User: Table(
            "iam_users", metadata, s("name", True), s("user_id"), s("path"), s("arn"),
            Column("created", Float, nullable=False),
        ),
        AccessKey: Table(
            "iam_access_keys", metadata, s("access_key_id", True), s("user_name"),
            s("secret"), s("status"), Column("created", Float, nullable=False),
        ),
        Role: Table(
            "iam_roles", metadata, s("name", True), s("role_id"), s("path"), s("arn"),
            Column("trust_policy", Text, nullable=False), Column("description", Text, nullable=False),
            Column("max_session_duration", Integer, nullable=False),
            Column("created", Float, nullable=False),
        ),
        InlinePolicy: Table(
            "iam_inline_policies", metadata, s("owner_kind", True), s("owner_name", True),
            s("policy_name", True), Column("document", Text, nullable=False),
        ),
        ManagedPolicy: Table(
            "iam_managed_policies", metadata, s("arn", True), s("name"), s("policy_id"),
            s("path"), Column("description", Text, nullable=False),
            Column("document", Text, nullable=False), s("default_version_id"),
            Column("created", Float, nullable=False), Column("updated", Float, nullable=False),
        ),
        Attachment: Table(
            "iam_attachments", metadata, s("owner_kind", True), s("owner_name", True),
            s("policy_arn", True),
        ),
        RoleSession: Table(
            "iam_role_sessions", metadata, s("access_key_id", True), s("secret"),
            s("session_token", False), s("role_name"), s("session_name"),
            Column("expires", Float, nullable=False),
        ),
    }  # fmt: skip


class IamStore:
    """SQL persistence of IAM entities (SQLite or PostgreSQL through SQLAlchemy)."""

    metadata: ClassVar[MetaData] = MetaData()
    tables: ClassVar[dict[type[Entity], Table]] = _tables(metadata)

    def __init__(self, engine: AsyncEngine, sealer: SecretSealer | None = None) -> None:
        self._engine = engine
        self._sealer = sealer

    async def load(self, *, sessions_after: float) -> Snapshot:
        """Everything, except role sessions that expired at or before `sessions_after`."""
        async with self._engine.connect() as conn:

            async def rows(kind: type[Entity]) -> list[Any]:
                table = self.tables[kind]
                query = sql_select(table)
                if kind is RoleSession:
                    query = query.where(table.c.expires > sessions_after)
                result = await conn.execute(query)
                return [await self._opened(kind(**row._mapping)) for row in result]

            return Snapshot(
                users=await rows(User),
                access_keys=await rows(AccessKey),
                roles=await rows(Role),
                inline_policies=await rows(InlinePolicy),
                managed_policies=await rows(ManagedPolicy),
                attachments=await rows(Attachment),
                sessions=await rows(RoleSession),
            )

    async def write(self, changes: Sequence[Change]) -> None:
        """Apply `changes` in one transaction; a put replaces a record with its key."""
        # Seal before the transaction: no awaits on a KMS while holding the writer.
        records = [await self._sealed(c.record) if isinstance(c, Put) else None for c in changes]
        async with self._engine.begin() as conn:
            for change, record in zip(changes, records, strict=True):
                if record is not None:
                    table = self.tables[type(record)]
                    values = dataclasses.asdict(record)
                    await conn.execute(delete(table).where(self._key(table, values)))
                    await conn.execute(insert(table).values(**values))
                elif isinstance(change, Delete):
                    table = self.tables[change.kind]
                    await conn.execute(delete(table).where(self._key(table, change.key)))

    async def expire_sessions(self, before: float) -> None:
        table = self.tables[RoleSession]
        async with self._engine.begin() as conn:
            await conn.execute(delete(table).where(table.c.expires <= before))

    async def _sealed(self, record: Entity) -> Entity:
        if self._sealer is None or not isinstance(record, AccessKey | RoleSession):
            return record
        blob = await self._sealer.seal(record.secret.encode(), _context(record))
        text = _SEALED + base64.b64encode(blob).decode()
        return dataclasses.replace(record, secret=text)

    async def _opened(self, record: Any) -> Any:
        if not isinstance(record, AccessKey | RoleSession):
            return record
        if not record.secret.startswith(_SEALED):
            return record
        if self._sealer is None:
            raise SealedSecretUnreadable(
                f"The secret of {record.access_key_id} is sealed; start with the master key."
            )
        blob = base64.b64decode(record.secret[len(_SEALED) :])
        secret = await self._sealer.open(blob, _context(record))
        return dataclasses.replace(record, secret=secret.decode())

    @staticmethod
    def _key(table: Table, values: dict[str, Any]) -> Any:
        """Match on the given columns of the primary key (a prefix deletes many)."""
        if not any(c.name in values for c in table.primary_key.columns):
            raise ValueError(f"a change to {table.name} must name its key")
        return and_(*(c == values[c.name] for c in table.primary_key.columns if c.name in values))


def _context(record: AccessKey | RoleSession) -> dict[str, str]:
    # Bound to the key id: a sealed secret copied onto another key's row will not open.
    return {"lamina:purpose": "iam-secret", "AccessKeyId": record.access_key_id}
