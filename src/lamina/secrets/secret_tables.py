"""SQL tables of the Secrets Manager store (own MetaData; `open_database` creates them).

`sealed` is an envelope blob bound to {"SecretARN", "SecretVersionId"}: no value is
ever stored in the clear, and a version's blob does not open as another version's.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, LargeBinary, MetaData, String, Table, Text

secrets_metadata = MetaData()

sm_secrets = Table(
    "sm_secrets",
    secrets_metadata,
    Column("arn", String(1024), primary_key=True),
    # Unique even across secrets pending deletion: AWS refuses to reuse such a name.
    Column("name", String(512), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("kms_key_id", String(2048), nullable=True),
    Column("tags", Text, nullable=False, default="[]"),  # JSON [[key, value], ...]
    Column("created_at", Float, nullable=False),
    Column("last_changed_at", Float, nullable=False),
    Column("last_accessed_at", Float, nullable=True),
    Column("deleted_at", Float, nullable=True),
    Column("deletion_at", Float, nullable=True),
)

sm_versions = Table(
    "sm_versions",
    secrets_metadata,
    Column(
        "secret_arn",
        String(1024),
        ForeignKey("sm_secrets.arn", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version_id", String(64), primary_key=True),
    Column("stages", Text, nullable=False, default="[]"),  # JSON list of labels
    Column("created_at", Float, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)
