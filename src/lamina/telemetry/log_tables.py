"""SQL tables of the log store: log groups, their streams, and the streams' events.

Events carry their group id as well as their stream id: FilterLogEvents searches a
whole group in time order, and that index must not need a join to be walked.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only auto-assigns ids to an INTEGER PRIMARY KEY (the rowid alias); other
# databases get a 64-bit key, since a busy server writes billions of events.
_EventId = BigInteger().with_variant(Integer(), "sqlite")

log_metadata = MetaData()

log_groups = Table(
    "log_groups",
    log_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(512), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("retention_days", Integer, nullable=True),
    Column("stored_bytes", BigInteger, nullable=False, default=0),
)

log_streams = Table(
    "log_streams",
    log_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "group_id",
        Integer,
        ForeignKey("log_groups.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(512), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("first_event_ms", BigInteger, nullable=True),
    Column("last_event_ms", BigInteger, nullable=True),
    Column("last_ingestion_ms", BigInteger, nullable=True),
    Column("stored_bytes", BigInteger, nullable=False, default=0),
    UniqueConstraint("group_id", "name", name="uq_log_streams_group_name"),
    Index("ix_log_streams_group_last_event", "group_id", "last_event_ms"),
)

log_events = Table(
    "log_events",
    log_metadata,
    Column("id", _EventId, primary_key=True, autoincrement=True),
    Column(
        "group_id",
        Integer,
        ForeignKey("log_groups.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "stream_id",
        Integer,
        ForeignKey("log_streams.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("ingestion_ms", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_log_events_stream_time", "stream_id", "timestamp_ms", "id"),
    Index("ix_log_events_group_time", "group_id", "timestamp_ms", "id"),
)
