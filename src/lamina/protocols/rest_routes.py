"""Route table for the REST protocols: (method, path, query) -> operation + URI labels.

Every operation of a rest-json (or rest-xml) model has an `http.requestUri` template:
literal segments, whole-segment labels `{FunctionName}`, greedy labels `{Key+}` that
swallow slashes, and sometimes query literals after "?" (`?versions`, `?List=ALL`)
that tell apart operations sharing one path (Lambda's ListLayers and
GetLayerVersionByArn are both `GET /2018-10-31/layers`).

Routes are bucketed by method and first path segment (Lambda's API version prefixes
`2015-03-31`, `2017-10-31`, ... make that a good key), so a lookup tries a handful of
anchored regexes instead of all ~90. Within a bucket the most specific route wins:
query literals first, then more literal segments, then fewer greedy labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.model import OperationModel, ServiceModel

_LABEL = re.compile(r"^\{([^}]+)\}$")

# Bucket for templates whose first segment is a label (S3's `/{Bucket}/...`).
_ANY_SEGMENT = "\0"
_PLAIN_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class RestRoute:
    operation: OperationModel
    method: str
    pattern: re.Pattern[str]
    labels: tuple[str, ...]  # label name per regex group, in order
    query_literals: tuple[tuple[str, str | None], ...]  # ("List", "ALL"), ("versions", None)
    required_query: frozenset[str]  # query keys the input requires (S3 UploadPart vs PutObject)
    specificity: tuple[int, int, int, int]

    def query_matches(self, query: Mapping[str, list[str]]) -> bool:
        for key, value in self.query_literals:
            got = query.get(key)
            if got is None or (value is not None and value not in got):
                return False
        return True


def compile_route(operation: OperationModel) -> RestRoute:
    http = operation.http
    template: str = http["requestUri"]
    path, _, query_text = template.partition("?")
    literals: list[tuple[str, str | None]] = []
    for pair in filter(None, query_text.split("&")):
        key, eq, value = pair.partition("=")
        literals.append((key, value if eq else None))

    parts: list[str] = []
    labels: list[str] = []
    literal_count = greedy_count = 0
    for segment in path.strip("/").split("/") if path.strip("/") else []:
        label = _LABEL.match(segment)
        if label is None:
            parts.append(re.escape(segment))
            literal_count += 1
            continue
        name = label.group(1)
        if name.endswith("+"):
            labels.append(name[:-1])
            parts.append("(.+)")
            greedy_count += 1
        else:
            labels.append(name)
            parts.append("([^/]+)")
    # A trailing slash is tolerated: some clients add one, and no AWS model
    # distinguishes two operations by it.
    regex = "^/" + "/".join(parts) + "/?$"

    required_query: set[str] = set()
    shape = operation.input_shape
    if shape is not None:
        for name in shape.required_members:
            member = shape.members[name]
            if member.serialization.get("location") == "querystring":
                required_query.add(member.serialization.get("name", name))

    return RestRoute(
        operation=operation,
        method=str(http.get("method", "POST")).upper(),
        pattern=re.compile(regex),
        labels=tuple(labels),
        query_literals=tuple(literals),
        required_query=frozenset(required_query),
        specificity=(len(literals), literal_count, -greedy_count, len(required_query)),
    )


def _first_segment(path: str) -> str:
    start = 1 if path.startswith("/") else 0
    end = path.find("/", start)
    return path[start:] if end < 0 else path[start:end]


class RestRouteTable:
    """All routes of one service model, looked up by method and first path segment."""

    def __init__(self, model: ServiceModel) -> None:
        buckets: dict[tuple[str, str], list[RestRoute]] = {}
        for name in model.operation_names:
            route = compile_route(model.operation_model(name))
            first = _first_segment(route.operation.http["requestUri"].partition("?")[0])
            key = _ANY_SEGMENT if _LABEL.match(first) else first
            buckets.setdefault((route.method, key), []).append(route)
        for routes in buckets.values():
            routes.sort(key=lambda r: r.specificity, reverse=True)
        self._buckets = buckets
        # Answers for requests without a query string, which repeat (the same function
        # invoked again and again): a dict lookup instead of a few regexes.
        self._plain: dict[tuple[str, str], tuple[OperationModel, dict[str, str]] | None] = {}

    def match(
        self, method: str, path: str, query: Mapping[str, list[str]] | None = None
    ) -> tuple[OperationModel, dict[str, str]] | None:
        """Find the operation for a request; `path` is the raw (percent-encoded) path.

        Labels are matched on the raw path and decoded afterwards, so a label may
        hold an encoded "/" (a function ARN, an S3 key) without splitting the path.
        The labels' dict is shared by every caller of the same request: read it only.
        """
        if query:
            return self._match(method.upper(), path, query)
        key = (method, path)
        try:
            return self._plain[key]
        except KeyError:
            pass
        found = self._match(method.upper(), path, {})
        if len(self._plain) >= _PLAIN_CACHE_SIZE:
            del self._plain[next(iter(self._plain))]  # the oldest: dicts keep order
        self._plain[key] = found
        return found

    def _match(
        self, method: str, path: str, query: Mapping[str, list[str]]
    ) -> tuple[OperationModel, dict[str, str]] | None:
        fallback: tuple[OperationModel, dict[str, str]] | None = None
        for key in (_first_segment(path), _ANY_SEGMENT):
            for route in self._buckets.get((method, key), ()):
                found = route.pattern.match(path)
                if found is None or not route.query_matches(query):
                    continue
                params = {
                    label: unquote(value)
                    for label, value in zip(route.labels, found.groups(), strict=True)
                }
                if route.required_query.issubset(query):
                    return route.operation, params
                # The client left out a required query member: keep looking for a route
                # that fits better, but answer with this one (and let the service say
                # what is missing) rather than 404.
                if fallback is None:
                    fallback = (route.operation, params)
        return fallback
