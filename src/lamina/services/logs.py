"""CloudWatch Logs API (botocore model `logs`, json protocol) over the LogStore.

Parses and checks the members of each operation, calls the store, and renders the
output members exactly as botocore's model names them. Group and stream logic, paging
and filter patterns live in `lamina.telemetry`.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from lamina.protocols.context import RequestContext
from lamina.services.operations import OperationTable
from lamina.telemetry.log_model import LogEvent, LogGroup, LogStream, invalid_parameter
from lamina.telemetry.logstore import LogStore

# PutLogEvents' limits, as CloudWatch documents them.
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_PAST_MS = 14 * 24 * 3600 * 1000
MAX_FUTURE_MS = 2 * 3600 * 1000
MAX_SPAN_MS = 24 * 3600 * 1000


def _group_arn(ctx: RequestContext, group: str) -> str:
    return f"arn:aws:logs:{ctx.region}:{ctx.account_id}:log-group:{group}"


def _group_name(params: dict[str, Any]) -> str:
    """The group named by `logGroupName` or `logGroupIdentifier` (a name or an ARN)."""
    name, identifier = params.get("logGroupName"), params.get("logGroupIdentifier")
    if name and identifier:
        raise invalid_parameter("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
    if identifier:
        if identifier.startswith("arn:"):
            _, _, rest = identifier.partition(":log-group:")
            return str(rest.removesuffix(":*"))
        return str(identifier)
    if not name:
        raise invalid_parameter("Should provide either logGroupName or logGroupIdentifier.")
    return str(name)


def _required(params: dict[str, Any], member: str) -> Any:
    value = params.get(member)
    if value is None:
        raise invalid_parameter(f"Missing required parameter {member}.")
    return value


def _group_out(group: LogGroup, ctx: RequestContext) -> dict[str, Any]:
    out: dict[str, Any] = {
        "logGroupName": group.name,
        "creationTime": group.created_ms,
        "metricFilterCount": 0,
        "arn": _group_arn(ctx, group.name) + ":*",
        "logGroupArn": _group_arn(ctx, group.name),
        "storedBytes": group.stored_bytes,
        "logGroupClass": "STANDARD",
    }
    if group.retention_days is not None:
        out["retentionInDays"] = group.retention_days
    return out


def _stream_out(stream: LogStream, group: str, ctx: RequestContext) -> dict[str, Any]:
    out: dict[str, Any] = {
        "logStreamName": stream.name,
        "creationTime": stream.created_ms,
        "arn": f"{_group_arn(ctx, group)}:log-stream:{stream.name}",
        "storedBytes": stream.stored_bytes,
    }
    optional = {
        "firstEventTimestamp": stream.first_event_ms,
        "lastEventTimestamp": stream.last_event_ms,
        "lastIngestionTime": stream.last_ingestion_ms,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def _event_out(event: LogEvent) -> dict[str, Any]:
    return {
        "timestamp": event.timestamp_ms,
        "message": event.message,
        "ingestionTime": event.ingestion_ms,
    }


def _filtered_event_out(event: LogEvent) -> dict[str, Any]:
    return {"logStreamName": event.stream, **_event_out(event), "eventId": event.event_id}


class LogsService:
    """ServiceHandler for the `logs` signing name."""

    def __init__(self, store: LogStore) -> None:
        self._store = store
        self._table = OperationTable("CloudWatch Logs", {
            "CreateLogGroup": self.create_log_group,
            "DeleteLogGroup": self.delete_log_group,
            "DescribeLogGroups": self.describe_log_groups,
            "CreateLogStream": self.create_log_stream,
            "DeleteLogStream": self.delete_log_stream,
            "DescribeLogStreams": self.describe_log_streams,
            "PutLogEvents": self.put_log_events,
            "PutRetentionPolicy": self.put_retention_policy,
            "DeleteRetentionPolicy": self.delete_retention_policy,
            "GetLogEvents": self.get_log_events,
            "FilterLogEvents": self.filter_log_events,
        })

    async def __call__(
        self, operation: str, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        return await self._table(operation, params, ctx)

    async def create_log_group(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        await self._store.create_group(_required(params, "logGroupName"))
        return {}

    async def delete_log_group(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        await self._store.delete_group(_required(params, "logGroupName"))
        return {}

    async def describe_log_groups(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        groups, token = await self._store.describe_groups(
            prefix=params.get("logGroupNamePrefix"),
            pattern=params.get("logGroupNamePattern"),
            limit=params.get("limit") or 50,
            token=params.get("nextToken"),
        )
        out: dict[str, Any] = {"logGroups": [_group_out(g, ctx) for g in groups]}
        if token:
            out["nextToken"] = token
        return out

    async def create_log_stream(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        await self._store.create_stream(
            _required(params, "logGroupName"), _required(params, "logStreamName")
        )
        return {}

    async def delete_log_stream(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        await self._store.delete_stream(
            _required(params, "logGroupName"), _required(params, "logStreamName")
        )
        return {}

    async def put_retention_policy(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        days = _required(params, "retentionInDays")
        await self._store.set_retention(_required(params, "logGroupName"), int(days))
        return {}

    async def delete_retention_policy(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        await self._store.set_retention(_required(params, "logGroupName"), None)
        return {}

    async def describe_log_streams(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        group = _group_name(params)
        streams, token = await self._store.describe_streams(
            group,
            prefix=params.get("logStreamNamePrefix"),
            order_by=params.get("orderBy") or "LogStreamName",
            descending=bool(params.get("descending")),
            limit=params.get("limit") or 50,
            token=params.get("nextToken"),
        )
        out: dict[str, Any] = {"logStreams": [_stream_out(s, group, ctx) for s in streams]}
        if token:
            out["nextToken"] = token
        return out

    async def put_log_events(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        group = _required(params, "logGroupName")
        stream = _required(params, "logStreamName")
        events = [(int(e["timestamp"]), str(e["message"])) for e in _required(params, "logEvents")]
        if not 1 <= len(events) <= 10_000:
            raise invalid_parameter("logEvents must hold between 1 and 10000 events.")
        if any(later[0] < earlier[0] for earlier, later in pairwise(events)):
            raise invalid_parameter(
                "Log events in a single PutLogEvents request must be in chronological order."
            )
        size = sum(
            len(message.encode(errors="replace")) + EVENT_OVERHEAD_BYTES for _, message in events
        )
        if size > MAX_BATCH_BYTES:
            raise invalid_parameter(
                f"Upload too large: {size} bytes exceeds {MAX_BATCH_BYTES} bytes."
            )
        # Events are in time order, so the too-old ones are a prefix and the too-new
        # ones a suffix; the rest are accepted, as CloudWatch does.
        now = self._store.now_ms()
        old_end = sum(1 for ts, _ in events if ts < now - MAX_PAST_MS)
        new_start = next(
            (i for i, (ts, _) in enumerate(events) if ts > now + MAX_FUTURE_MS), len(events)
        )
        accepted = events[old_end:new_start]
        if accepted and accepted[-1][0] - accepted[0][0] > MAX_SPAN_MS:
            raise invalid_parameter(
                "The batch of log events in a single PutLogEvents request cannot span more "
                "than 24 hours."
            )
        await self._store.put_events(group, stream, accepted)
        out: dict[str, Any] = {"nextSequenceToken": f"{now:056d}"}
        rejected: dict[str, int] = {}
        if old_end:
            rejected["tooOldLogEventEndIndex"] = old_end - 1
        if new_start < len(events):
            rejected["tooNewLogEventStartIndex"] = new_start
        if rejected:
            out["rejectedLogEventsInfo"] = rejected
        return out

    async def get_log_events(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        events, forward, backward = await self._store.get_events(
            _group_name(params),
            _required(params, "logStreamName"),
            start_ms=params.get("startTime"),
            end_ms=params.get("endTime"),
            start_from_head=bool(params.get("startFromHead")),
            limit=params.get("limit"),
            token=params.get("nextToken"),
        )
        return {
            "events": [_event_out(e) for e in events],
            "nextForwardToken": forward,
            "nextBackwardToken": backward,
        }

    async def filter_log_events(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        start_from_head = params.get("startFromHead")
        events, token = await self._store.filter_events(
            _group_name(params),
            stream_names=params.get("logStreamNames"),
            stream_prefix=params.get("logStreamNamePrefix"),
            start_ms=params.get("startTime"),
            end_ms=params.get("endTime"),
            filter_pattern=params.get("filterPattern"),
            limit=params.get("limit"),
            token=params.get("nextToken"),
            start_from_head=True if start_from_head is None else bool(start_from_head),
        )
        # searchedLogStreams has been an empty list in CloudWatch since May 2020.
        out: dict[str, Any] = {
            "events": [_filtered_event_out(e) for e in events],
            "searchedLogStreams": [],
        }
        if token:
            out["nextToken"] = token
        return out
