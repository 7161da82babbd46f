"""Where Lambda writes a function's logs, and the platform lines it writes there.

The invoke path builds these and hands them to `LogStore.append`; keeping the exact
spelling in one place is what lets `aws logs tail`, Powertools and log parsers that
were written for Lambda read lamina's logs unchanged.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime


def log_group_name(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


def log_stream_name(version: str, created_s: float, environment_id: str | None = None) -> str:
    """`YYYY/MM/DD/[version]<32 hex>`: one stream per execution environment, dated UTC."""
    day = datetime.fromtimestamp(created_s, UTC).strftime("%Y/%m/%d")
    return f"{day}/[{version}]{environment_id or uuid.uuid4().hex}"


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def billed_duration_ms(duration_ms: float) -> int:
    # Lambda bills in 1 ms increments, rounding up, with a 1 ms minimum.
    return max(1, math.ceil(duration_ms))


def report_line(
    request_id: str,
    duration_ms: float,
    memory_size_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    """Lambda's REPORT line: tab-separated fields, each followed by a tab.

    `init_duration_ms` is given on a cold start only; `status` ("timeout", "error")
    and `error_type` (e.g. "Runtime.ExitError") only when the invocation failed in
    the platform rather than in the handler.
    """
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed_duration_ms(duration_ms)} ms",
        f"Memory Size: {memory_size_mb} MB",
        f"Max Memory Used: {max_memory_used_mb} MB",
    ]
    if init_duration_ms is not None:
        fields.append(f"Init Duration: {init_duration_ms:.2f} ms")
    if status is not None:
        fields.append(f"Status: {status}")
    if error_type is not None:
        fields.append(f"Error Type: {error_type}")
    return "\t".join(fields) + "\t\n"


def timeout_line(request_id: str, timeout_s: float, at_s: float) -> str:
    """The line Lambda writes when it stops an invocation at its timeout."""
    stamp = datetime.fromtimestamp(at_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds\n"
