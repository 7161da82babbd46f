"""SQL tables of code signing (own MetaData; `open_database` creates them).

A profile version's private key is stored only sealed by the master key
(`sealed_key`, a lamina envelope bound to the version's ARN); its public key is
stored as it is.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, String, Table, Text

signing_metadata = MetaData()

signing_profiles = Table(
    "signing_profiles",
    signing_metadata,
    Column("version_arn", String(512), primary_key=True),
    Column("name", String(64), nullable=False, index=True),
    Column("version", String(16), nullable=False),
    Column("platform_id", String(64), nullable=False),
    Column("validity_value", Integer, nullable=False),
    Column("validity_type", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revocation_effective_from", Float, nullable=True),
    Column("revoked_by", String(512), nullable=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("sealed_key", LargeBinary, nullable=False),
    Column("tags", Text, nullable=False, default="{}"),  # JSON object
)

code_signing_configs = Table(
    "code_signing_configs",
    signing_metadata,
    Column("arn", String(256), primary_key=True),
    Column("config_id", String(32), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("allowed_arns", Text, nullable=False),  # JSON list of profile version ARNs
    Column("policy", String(8), nullable=False),
    Column("last_modified", String(40), nullable=False),
)

function_code_signing = Table(
    "function_code_signing",
    signing_metadata,
    Column("function_name", String(140), primary_key=True),
    Column("config_arn", String(256), nullable=False),
)
