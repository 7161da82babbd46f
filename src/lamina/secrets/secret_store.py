"""SecretStore: Secrets Manager's secrets and versions, durable and encrypted at rest.

Values are sealed by `Envelope` (the secret's KMS key, else the master key) before a
transaction starts and opened after it ends: a KMS call never runs while this store
holds SQLite's write lock. A secret marked for deletion refuses everything but
Describe, Restore and a forced Delete until its window ends; then it is purged
(lazily on access, or by `purge_expired`, which the server may run periodically).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from sqlalchemy import MetaData, RowMapping, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lamina.secrets.envelope import Envelope
from lamina.secrets.errors import (
    DecryptionFailure,
    EncryptionFailure,
    InvalidCiphertextException,
    InvalidParameterException,
    InvalidRequestException,
    KmsError,
    ResourceExistsException,
    ResourceNotFoundException,
)
from lamina.secrets.secret_listing import ListFilter, matches, page_start
from lamina.secrets.secret_model import (
    AWSCURRENT,
    MAX_VERSIONS,
    Secret,
    SecretValue,
    SecretVersion,
    check_name,
    check_recovery_window,
    move_stages,
    secret_arn,
)
from lamina.secrets.secret_tables import secrets_metadata, sm_secrets, sm_versions

_DAY_S = 86_400.0


class _Expired(ResourceNotFoundException):
    """An item whose deletion window has ended: not found, and due to be purged."""

    def __init__(self, message: str, ident: str) -> None:
        super().__init__(message)
        self.ident = ident


class SecretStore:
    metadata: ClassVar[MetaData] = secrets_metadata

    def __init__(
        self,
        engine: AsyncEngine,
        envelope: Envelope,
        account_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._envelope = envelope
        self._account_id = account_id
        self._clock = clock

    # -- writes -----------------------------------------------------------------------

    async def create_secret(
        self,
        name: str,
        *,
        region: str,
        value: SecretValue | None = None,
        description: str | None = None,
        kms_key_id: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        client_request_token: str | None = None,
    ) -> tuple[Secret, str | None]:
        """(secret, id of its first version, None when created without a value)."""
        check_name(name)
        arn = secret_arn(region, self._account_id, name)
        version_id = _version_id(client_request_token) if value is not None else None
        sealed = (
            await self._seal(arn, version_id, value, kms_key_id)
            if value is not None and version_id is not None
            else None
        )
        now = self._clock()
        async with self._transaction() as conn:
            existing = (
                await conn.execute(select(sm_secrets).where(sm_secrets.c.name == name))
            ).first()
            if existing is not None and self._expired(existing._mapping):
                await self._purge(conn, existing.arn)
                existing = None
            if existing is not None:
                if existing.deleted_at is not None:
                    raise InvalidRequestException(
                        "You can't create this secret because a secret with this name is "
                        "already scheduled for deletion."
                    )
                raise ResourceExistsException(
                    f"The operation failed because the secret {name} already exists."
                )
            try:
                await conn.execute(
                    insert(sm_secrets).values(
                        arn=arn,
                        name=name,
                        description=description,
                        kms_key_id=kms_key_id,
                        tags=orjson.dumps([list(t) for t in tags]).decode(),
                        created_at=now,
                        last_changed_at=now,
                    )
                )
            except IntegrityError:
                raise ResourceExistsException(
                    f"The operation failed because the secret {name} already exists."
                ) from None
            if sealed is not None:
                await conn.execute(
                    insert(sm_versions).values(
                        secret_arn=arn,
                        version_id=version_id,
                        stages=orjson.dumps([AWSCURRENT]).decode(),
                        created_at=now,
                        sealed=sealed,
                    )
                )
            secret = await self._load(conn, arn)
        return secret, version_id

    async def put_secret_value(
        self,
        secret_id: str,
        value: SecretValue,
        *,
        client_request_token: str | None = None,
        stages: Sequence[str] | None = None,
    ) -> SecretVersion:
        """A new version of the secret; by default it becomes AWSCURRENT."""
        stages = list(stages) if stages is not None else [AWSCURRENT]
        version_id = _version_id(client_request_token)
        async with self._transaction() as conn:
            secret = await self._load(conn, secret_id)
        secret.require_active()
        if version_id in secret.version_stages:
            return await self._existing_version(secret, version_id, value)
        sealed = await self._seal(secret.arn, version_id, value, secret.kms_key_id)
        now = self._clock()
        async with self._transaction() as conn:
            secret = await self._lock(conn, secret.arn, {"last_changed_at": now})
            labels = await self._add_version(conn, secret, version_id, sealed, stages, now)
            secret = await self._load(conn, secret.arn)
        return SecretVersion(secret, version_id, labels, _dt(now), value)

    async def update_secret(
        self,
        secret_id: str,
        *,
        value: SecretValue | None = None,
        description: str | None = None,
        kms_key_id: str | None = None,
        client_request_token: str | None = None,
    ) -> tuple[Secret, str | None]:
        """Change metadata and/or add a new AWSCURRENT version; (secret, new version id).

        The value is sealed (with the new key, if one is given) before anything is
        written, and metadata and version are written in one transaction: a key that
        cannot encrypt leaves the secret exactly as it was.
        """
        async with self._transaction() as conn:
            secret = await self._load(conn, secret_id)
        secret.require_active()
        version_id: str | None = None
        sealed: bytes | None = None
        if value is not None:
            version_id = _version_id(client_request_token)
            if version_id in secret.version_stages:
                version = await self._existing_version(secret, version_id, value)
                return version.secret, version.version_id
            key = kms_key_id if kms_key_id is not None else secret.kms_key_id
            sealed = await self._seal(secret.arn, version_id, value, key)
        now = self._clock()
        changes: dict[str, Any] = {"last_changed_at": now}
        if description is not None:
            changes["description"] = description
        if kms_key_id is not None:
            # Only versions written from now on use the new key; existing versions
            # keep naming the key that wrapped them, so they stay readable.
            changes["kms_key_id"] = kms_key_id
        async with self._transaction() as conn:
            secret = await self._lock(conn, secret.arn, changes)
            if sealed is not None and version_id is not None:
                await self._add_version(conn, secret, version_id, sealed, [AWSCURRENT], now)
            secret = await self._load(conn, secret.arn)
        return secret, version_id

    async def delete_secret(
        self, secret_id: str, *, recovery_window_days: int | None = None, force: bool = False
    ) -> tuple[Secret, datetime]:
        """(the secret as it was, the date it is or will be gone)."""
        days = check_recovery_window(recovery_window_days, force)
        now = self._clock()
        async with self._transaction() as conn:
            secret = await self._load(conn, secret_id)
            if days is None:
                await self._purge(conn, secret.arn)
                return secret, _dt(now)
            secret.require_active()
            deletion_at = now + days * _DAY_S
            await conn.execute(
                update(sm_secrets)
                .where(sm_secrets.c.arn == secret.arn)
                .values(deleted_at=now, deletion_at=deletion_at)
            )
        return secret, _dt(deletion_at)

    async def restore_secret(self, secret_id: str) -> Secret:
        async with self._transaction() as conn:
            secret = await self._load(conn, secret_id)
            await conn.execute(
                update(sm_secrets)
                .where(sm_secrets.c.arn == secret.arn)
                .values(deleted_at=None, deletion_at=None)
            )
            return await self._load(conn, secret.arn)

    async def purge_expired(self) -> int:
        """Delete every secret whose recovery window has ended; how many were."""
        async with self._transaction() as conn:
            arns = list(
                (
                    await conn.execute(
                        select(sm_secrets.c.arn).where(sm_secrets.c.deletion_at <= self._clock())
                    )
                ).scalars()
            )
            for arn in arns:
                await self._purge(conn, arn)
        return len(arns)

    # -- reads ------------------------------------------------------------------------

    async def describe_secret(self, secret_id: str) -> Secret:
        async with self._transaction() as conn:
            return await self._load(conn, secret_id)

    async def get_secret_value(
        self,
        secret_id: str,
        *,
        version_id: str | None = None,
        version_stage: str | None = None,
    ) -> SecretVersion:
        async with self._transaction() as conn:
            secret = await self._load(conn, secret_id)
            secret.require_active()
            query = select(sm_versions).where(sm_versions.c.secret_arn == secret.arn)
            if version_id is not None:
                query = query.where(sm_versions.c.version_id == version_id)
            rows = (await conn.execute(query)).all()
        stage = version_stage if version_stage is not None or version_id is not None else AWSCURRENT
        row = next(
            (r for r in rows if stage is None or stage in orjson.loads(r.stages)),
            None,
        )
        if row is None:
            what = (
                f"VersionId: {version_id}" if version_id is not None else f"staging label: {stage}"
            )
            raise ResourceNotFoundException(
                f"Secrets Manager can't find the specified secret value for {what}"
            )
        value = await self._open(secret.arn, row.version_id, bytes(row.sealed))
        await self._touch(secret)
        return SecretVersion(
            secret, row.version_id, tuple(orjson.loads(row.stages)), _dt(row.created_at), value
        )

    async def list_secrets(
        self,
        *,
        include_planned_deletion: bool = False,
        filters: Iterable[ListFilter] = (),
        sort_order: str = "asc",
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> tuple[list[Secret], str | None]:
        """One page of secrets and the token of the next page (None at the end)."""
        start = page_start(next_token)
        async with self._transaction() as conn:
            rows = (await conn.execute(select(sm_secrets))).all()
            # One query for every secret's labels, not one per secret.
            labels: dict[str, dict[str, tuple[str, ...]]] = {}
            versions = select(
                sm_versions.c.secret_arn, sm_versions.c.version_id, sm_versions.c.stages
            )
            for version in await conn.execute(versions):
                labels.setdefault(version.secret_arn, {})[version.version_id] = tuple(
                    orjson.loads(version.stages)
                )
        secrets = [
            _secret(row._mapping, labels.get(row.arn, {}))
            for row in rows
            if not self._expired(row._mapping)
        ]
        wanted = [
            s
            for s in secrets
            if (include_planned_deletion or s.deleted is None) and matches(s, filters)
        ]
        wanted.sort(key=lambda s: (s.created, s.name), reverse=sort_order == "desc")
        size = max_results or 100
        page = wanted[start : start + size]
        more = start + size < len(wanted)
        return page, str(start + size) if more else None

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

    async def _seal(
        self, arn: str, version_id: str, value: SecretValue, kms_key_id: str | None
    ) -> bytes:
        try:
            return await self._envelope.seal(
                value.to_bytes(), _context(arn, version_id), kms_key_id
            )
        except KmsError as exc:
            raise EncryptionFailure(
                f"Secrets Manager can't encrypt the secret value with the KMS key "
                f"{kms_key_id}: {exc.code}: {exc.message}"
            ) from None

    async def _open(self, arn: str, version_id: str, sealed: bytes) -> SecretValue:
        try:
            return SecretValue.from_bytes(
                await self._envelope.open(sealed, _context(arn, version_id))
            )
        except InvalidCiphertextException:
            raise DecryptionFailure(
                "Secrets Manager can't decrypt the protected secret text: the stored version "
                "does not open (it was altered or moved)."
            ) from None
        except KmsError as exc:
            raise DecryptionFailure(
                f"Secrets Manager can't decrypt the protected secret text using the provided "
                f"KMS key: {exc.code}: {exc.message}"
            ) from None

    async def _lock(self, conn: AsyncConnection, arn: str, changes: dict[str, Any]) -> Secret:
        """Write `changes` to the secret's row, then read it back, active.

        Writing first takes the row's lock (SQLite's write lock, a row lock in
        PostgreSQL) before the labels are read, so concurrent writers move the labels
        one after the other, never both from the same picture.
        """
        await conn.execute(update(sm_secrets).where(sm_secrets.c.arn == arn).values(**changes))
        secret = await self._load(conn, arn)
        secret.require_active()
        return secret

    async def _add_version(
        self,
        conn: AsyncConnection,
        secret: Secret,
        version_id: str,
        sealed: bytes,
        stages: Sequence[str],
        now: float,
    ) -> tuple[str, ...]:
        """Insert a version and move the labels; the new version's labels."""
        labels = move_stages(secret.version_stages, version_id, stages)
        for vid, version_labels in labels.items():
            if vid != version_id and version_labels != secret.version_stages.get(vid):
                await conn.execute(
                    update(sm_versions)
                    .where(sm_versions.c.secret_arn == secret.arn, sm_versions.c.version_id == vid)
                    .values(stages=orjson.dumps(list(version_labels)).decode())
                )
        try:
            await conn.execute(
                insert(sm_versions).values(
                    secret_arn=secret.arn,
                    version_id=version_id,
                    stages=orjson.dumps(list(labels[version_id])).decode(),
                    created_at=now,
                    sealed=sealed,
                )
            )
        except IntegrityError:
            # A concurrent call with the same ClientRequestToken won the race.
            raise ResourceExistsException(
                "You can't modify an existing version, you can only create new versions."
            ) from None
        await self._prune_versions(conn, secret.arn)
        return labels[version_id]

    async def _existing_version(
        self, secret: Secret, version_id: str, value: SecretValue
    ) -> SecretVersion:
        """A retry with the same token and value is idempotent; any other reuse is an
        attempt to change a version, which Secrets Manager never allows."""
        existing = await self.get_secret_value(secret.arn, version_id=version_id)
        if existing.value.to_bytes() != value.to_bytes():
            raise ResourceExistsException(
                "You can't modify an existing version, you can only create new versions."
            )
        return existing

    async def _touch(self, secret: Secret) -> None:
        """Record LastAccessedDate, which Secrets Manager keeps to the day (one write a day)."""
        today = _dt(self._clock()).replace(hour=0, minute=0, second=0, microsecond=0)
        if secret.last_accessed == today:
            return
        async with self._transaction() as conn:
            await conn.execute(
                update(sm_secrets)
                .where(sm_secrets.c.arn == secret.arn)
                .values(last_accessed_at=today.timestamp())
            )

    async def _prune_versions(self, conn: AsyncConnection, arn: str) -> None:
        """Drop the oldest unlabelled versions past the cap, as Secrets Manager does."""
        rows = (
            await conn.execute(
                select(sm_versions.c.version_id, sm_versions.c.stages)
                .where(sm_versions.c.secret_arn == arn)
                .order_by(sm_versions.c.created_at)
            )
        ).all()
        excess = len(rows) - MAX_VERSIONS
        for row in rows:
            if excess <= 0:
                break
            if not orjson.loads(row.stages):
                await conn.execute(
                    delete(sm_versions).where(
                        sm_versions.c.secret_arn == arn, sm_versions.c.version_id == row.version_id
                    )
                )
                excess -= 1

    async def _load(self, conn: AsyncConnection, secret_id: str) -> Secret:
        row = await self._find(conn, secret_id)
        if row is None:
            raise ResourceNotFoundException("Secrets Manager can't find the specified secret.")
        if self._expired(row):
            raise _Expired("Secrets Manager can't find the specified secret.", row["arn"])
        return await self._secret_from_row(conn, row)

    async def _find(self, conn: AsyncConnection, secret_id: str) -> RowMapping | None:
        if not secret_id:
            raise InvalidParameterException("SecretId must not be empty.")
        if secret_id.startswith("arn:"):
            row = (
                await conn.execute(select(sm_secrets).where(sm_secrets.c.arn == secret_id))
            ).first()
            if row is None:
                # A partial ARN (without the random suffix) names the secret too.
                row = (
                    await conn.execute(
                        select(sm_secrets).where(sm_secrets.c.arn.startswith(secret_id + "-"))
                    )
                ).first()
                if row is not None and len(row.arn) != len(secret_id) + 7:
                    row = None
        else:
            row = (
                await conn.execute(select(sm_secrets).where(sm_secrets.c.name == secret_id))
            ).first()
        return row._mapping if row is not None else None

    def _expired(self, row: RowMapping) -> bool:
        deletion_at = row["deletion_at"]
        return deletion_at is not None and deletion_at <= self._clock()

    async def _purge(self, conn: AsyncConnection, arn: str) -> None:
        await conn.execute(delete(sm_versions).where(sm_versions.c.secret_arn == arn))
        await conn.execute(delete(sm_secrets).where(sm_secrets.c.arn == arn))

    async def _secret_from_row(self, conn: AsyncConnection, row: RowMapping) -> Secret:
        versions = (
            await conn.execute(
                select(sm_versions.c.version_id, sm_versions.c.stages).where(
                    sm_versions.c.secret_arn == row["arn"]
                )
            )
        ).all()
        return _secret(row, {v.version_id: tuple(orjson.loads(v.stages)) for v in versions})


def _secret(row: RowMapping, version_stages: Mapping[str, tuple[str, ...]]) -> Secret:
    return Secret(
        arn=row["arn"],
        name=row["name"],
        description=row["description"],
        kms_key_id=row["kms_key_id"],
        created=_dt(row["created_at"]),
        last_changed=_dt(row["last_changed_at"]),
        last_accessed=_optional_dt(row["last_accessed_at"]),
        deleted=_optional_dt(row["deleted_at"]),
        deletion_date=_optional_dt(row["deletion_at"]),
        tags=tuple((str(k), str(v)) for k, v in orjson.loads(row["tags"])),
        version_stages=version_stages,
    )


def _context(arn: str, version_id: str) -> dict[str, str]:
    # Secrets Manager's own encryption context for a version's data key.
    return {"SecretARN": arn, "SecretVersionId": version_id}


def _version_id(token: str | None) -> str:
    if token is None:
        return str(uuid.uuid4())
    if not 32 <= len(token) <= 64:
        raise InvalidParameterException(
            "ClientRequestToken must be between 32 and 64 characters long."
        )
    return token


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _optional_dt(epoch_s: float | None) -> datetime | None:
    return _dt(epoch_s) if epoch_s is not None else None
