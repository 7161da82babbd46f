"""The audit table, and the triggers that make it append-only in SQLite itself.

The application only ever inserts; the triggers make an UPDATE or DELETE through any
other path (a bug, a SQL shell) fail too, so tampering needs the file, not a query.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, String, Table

audit_metadata = MetaData()

audit_events = Table(
    "audit_events",
    audit_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time_ms", BigInteger, nullable=False, index=True),
    Column("request_id", String(64), nullable=False),
    Column("principal_arn", String(512), nullable=False, index=True),
    Column("access_key_id", String(128), nullable=False),
    Column("source_ip", String(64), nullable=False),
    Column("service", String(64), nullable=False),
    Column("operation", String(128), nullable=False, index=True),
    Column("resource", String(512), nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("error_code", String(128), nullable=False),
)

APPEND_ONLY_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
)
