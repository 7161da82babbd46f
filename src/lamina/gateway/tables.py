"""The gateway's own SQL tables (created by `Gateway.start`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)


@dataclass(frozen=True, slots=True)
class Tables:
    metadata: MetaData
    keys: Table
    spend: Table
    usage: Table
    prompts: Table
    bodies: Table


def gateway_tables() -> Tables:
    metadata = MetaData()
    keys = Table(
        "gateway_keys",
        metadata,
        Column("id", String, primary_key=True),
        Column("name", String, nullable=False),
        Column("key_hash", String, nullable=False, unique=True),
        Column("models", JSON),  # null: every model
        Column("rpm", Integer),
        Column("tpm", Integer),
        Column("max_parallel", Integer),
        Column("budget_usd", Float),
        Column("budget_period", String, nullable=False),
        Column("expires_at", Float),  # unix seconds
        Column("metadata", JSON, nullable=False),
        Column("revoked", Boolean, nullable=False, default=False),
        Column("created_at", Float, nullable=False),
    )
    # Spend per key and budget period, debited by adding (never read-modify-write), so
    # concurrent writers — tasks or nodes — never lose a debit.
    spend = Table(
        "gateway_spend",
        metadata,
        Column("key_id", String, primary_key=True),
        Column("period", String, primary_key=True),  # "total", "2026-11-27", "2026-11"
        Column("spent_usd", Float, nullable=False),
    )
    usage = Table(
        "gateway_usage",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("ts", Float, nullable=False, index=True),
        Column("key_id", String, nullable=False, index=True),
        Column("key_name", String, nullable=False),
        Column("model", String, nullable=False),
        Column("provider", String, nullable=False),
        Column("upstream_model", String, nullable=False),
        Column("api", String, nullable=False),
        Column("status", Integer, nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("cached_tokens", Integer, nullable=False),
        Column("cost_usd", Float, nullable=False),
        Column("latency_ms", Float, nullable=False),
        Column("ttft_ms", Float),
        Column("cache_hit", Boolean, nullable=False),
        Column("fallback", Boolean, nullable=False),
        Column("stream", Boolean, nullable=False),
    )
    # Prompt template versions published through the admin API (config ones live in
    # the config file).
    prompts = Table(
        "gateway_prompts",
        metadata,
        Column("name", String, primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("model", String, nullable=False),
        Column("template", String, nullable=False),
        Column("created_at", Float, nullable=False),
    )
    # Request and response bodies of calls whose model logs them (`log_bodies`),
    # redacted and capped, beside the call's usage row: a table of their own, so the
    # usage rows stay small and the totals fast.
    bodies = Table(
        "gateway_call_bodies",
        metadata,
        Column("usage_id", Integer, primary_key=True),
        Column("request", Text),
        Column("response", Text),
    )
    return Tables(metadata, keys, spend, usage, prompts, bodies)
