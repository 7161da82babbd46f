"""SQL tables of the KMS key store (own MetaData; `open_database` creates them).

Key material never touches the database in the clear: `wrapped` is the material
sealed by the master key, bound to its key id and version. A key has one row per
material version so rotation can add versions while old ciphertexts stay readable.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

kms_metadata = MetaData()

kms_keys = Table(
    "kms_keys",
    kms_metadata,
    Column("key_id", String(64), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("key_usage", String(32), nullable=False),
    Column("key_spec", String(32), nullable=False),
    Column("state", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deletion_at", Float, nullable=True),
    Column("pending_days", Integer, nullable=True),
    Column("material_version", Integer, nullable=False),
    Column("tags", Text, nullable=False, default="{}"),  # JSON object
)

kms_key_materials = Table(
    "kms_key_materials",
    kms_metadata,
    Column(
        "key_id",
        String(64),
        ForeignKey("kms_keys.key_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
)

kms_aliases = Table(
    "kms_aliases",
    kms_metadata,
    Column("alias_name", String(256), primary_key=True),
    Column(
        "key_id",
        String(64),
        ForeignKey("kms_keys.key_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("region", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
)
