"""Server side of botocore's `rest-json` protocol (Lambda, and most newer services).

An input member lives where its `location` says: a URI label, a query string key,
a header, a header prefix map (`headers`), or the JSON body. An input or output
shape may name one member as the `payload`: a blob payload is the raw body (Invoke's
event), a structure payload is the whole JSON body. Output members may also be the
HTTP status (`statusCode`, Invoke's StatusCode) or headers.

Errors: status from the error, `x-amzn-ErrorType: <Code>`, and a JSON body
`{"Type": "User"|"Service", "message": ...}` plus the error's extra fields, which is
what Lambda sends and what botocore's RestJSONParser turns into a ClientError.

Per operation, everything the model says is compiled once into an `_InputPlan` and an
`_OutputPlan`; a request walks those, never the botocore model.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.model import OperationModel, ServiceModel, Shape

from lamina.errors import LaminaError, ValidationError
from lamina.protocols import values
from lamina.protocols.json_shapes import Converter, JsonShapeCodec, json_default
from lamina.protocols.rest_routes import RestRouteTable
from lamina.protocols.wire import HttpRequest, HttpResponse, ParsedRequest, fault_type

_JSON = "application/json"
TextParser = Callable[[str], Any]
TextFormatter = Callable[[Any], str]


@dataclass(frozen=True, slots=True)
class _InputPlan:
    uri: tuple[tuple[str, str, TextParser], ...]  # (member, label, parse)
    query: tuple[tuple[str, str, bool, TextParser], ...]  # (member, key, is_list, parse)
    query_map: tuple[str, bool] | None  # (member, values are lists): unclaimed query keys
    claimed_query: frozenset[str]
    headers: tuple[tuple[str, str, TextParser], ...]  # (member, lower-cased header, parse)
    header_maps: tuple[tuple[str, str], ...]  # (member, lower-cased prefix)
    payload: str | None
    payload_kind: str  # "blob", "string", "structure" or "" when there is no payload member
    body: Converter | None  # JSON body -> members (payload structure or body members)


@dataclass(frozen=True, slots=True)
class _OutputPlan:
    status_member: str | None
    default_status: int
    headers: tuple[tuple[str, str, TextFormatter], ...]  # (member, header, format)
    header_maps: tuple[tuple[str, str], ...]  # (member, prefix)
    payload: str | None
    payload_kind: str
    body: Converter | None  # members -> JSON-ready body; None when the output has no body


def _text_parser(shape: Shape) -> TextParser:
    """Parse one header / query / label value of `shape`; ValueError when malformed."""
    type_name = shape.type_name
    if type_name == "string" and shape.serialization.get("jsonvalue"):
        return lambda text: orjson.loads(base64.b64decode(text))
    if type_name == "list":
        item = _text_parser(shape.member)
        return lambda text: [item(part) for part in _split_header_list(text)]
    return lambda text: values.parse_text(type_name, text)


def _text_formatter(shape: Shape, default_timestamp: str) -> TextFormatter:
    type_name = shape.type_name
    if type_name == "string" and shape.serialization.get("jsonvalue"):
        return lambda value: base64.b64encode(orjson.dumps(value)).decode("ascii")
    if type_name == "list":
        item = _text_formatter(shape.member, default_timestamp)
        return lambda value: ",".join(_quote_list_item(item(v)) for v in value)
    fmt = shape.serialization.get("timestampFormat", default_timestamp)
    return lambda value: values.format_text(type_name, value, fmt)


def _split_header_list(text: str) -> list[str]:
    # RFC 7230 lists: items split on commas, a quoted item may hold commas and \".
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return items


def _quote_list_item(text: str) -> str:
    if '"' in text or "," in text:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _payload_kind(shape: Shape | None) -> tuple[str | None, str]:
    if shape is None:
        return None, ""
    name = shape.serialization.get("payload")
    if name is None:
        return None, ""
    kind = shape.members[name].type_name
    return name, kind if kind in ("blob", "string") else "structure"


class RestJsonProtocol:
    """rest-json for one service model: route, parse, serialize, render errors."""

    def __init__(self, model: ServiceModel) -> None:
        self.model = model
        self.routes = RestRouteTable(model)
        self._codec = JsonShapeCodec("unixtimestamp")
        self._inputs: dict[str, _InputPlan] = {}
        self._outputs: dict[str, _OutputPlan] = {}
        for name in model.operation_names:
            operation = model.operation_model(name)
            self._inputs[name] = self._plan_input(operation)
            self._outputs[name] = self._plan_output(operation)
        # A few Lambda errors model `Message`, not `message`; botocore's modeled parse
        # of the error reads the modeled key, so we write that one.
        self._message_keys = {
            shape.name: "Message"
            for shape in model.error_shapes
            if "Message" in shape.members and "message" not in shape.members
        }

    # -- requests ------------------------------------------------------------------------

    def match(
        self, method: str, path: str, query: Mapping[str, list[str]] | None = None
    ) -> tuple[OperationModel, dict[str, str]] | None:
        return self.routes.match(method, path, query)

    def parse_request(self, request: HttpRequest) -> ParsedRequest:
        found = self.routes.match(request.method, request.path, request.query)
        if found is None:
            raise LaminaError(
                f"No operation matches {request.method} {request.path}",
                code="UnknownOperationException",
                status=404,
            )
        operation, uri_params = found
        return ParsedRequest(operation.name, self.parse(operation.name, uri_params, request))

    def parse(
        self, operation: str, uri_params: Mapping[str, str], request: HttpRequest
    ) -> dict[str, Any]:
        plan = self._inputs[operation]
        params: dict[str, Any] = {}
        for member, label, parse in plan.uri:
            if label in uri_params:
                params[member] = _convert(parse, uri_params[label], member)
        query = request.query
        for member, key, is_list, parse in plan.query:
            got = query.get(key)
            if got:
                params[member] = (
                    [_convert(parse, v, member) for v in got]
                    if is_list
                    else _convert(parse, got[0], member)
                )
        if plan.query_map is not None:
            member, as_lists = plan.query_map
            rest = {
                k: v if as_lists else v[0] for k, v in query.items() if k not in plan.claimed_query
            }
            if rest:
                params[member] = rest
        headers = request.headers
        for member, header, parse in plan.headers:
            text = headers.get(header)
            if text is not None:
                params[member] = _convert(parse, text, member)
        for member, prefix in plan.header_maps:
            found = {k[len(prefix) :]: v for k, v in headers.items() if k.startswith(prefix)}
            if found:
                params[member] = found
        body, payload = request.body, plan.payload
        if payload is not None and plan.payload_kind == "blob":
            params[payload] = body  # raw bytes, even when empty (Invoke with no event)
        elif payload is not None and plan.payload_kind == "string":
            params[payload] = body.decode()
        elif plan.body is not None and body.strip():
            document = _load_json(body)
            if payload is not None:
                params[payload] = plan.body(document)
            else:
                params.update(plan.body(document))
        return params

    # -- responses -----------------------------------------------------------------------

    def serialize_response(
        self, operation: str, output: Mapping[str, Any], request_id: str
    ) -> HttpResponse:
        plan = self._outputs[operation]
        status = plan.default_status
        if plan.status_member is not None and output.get(plan.status_member) is not None:
            status = int(output[plan.status_member])
        headers = {"x-amzn-RequestId": request_id}
        for member, header, fmt in plan.headers:
            value = output.get(member)
            if value is not None:
                headers[header] = fmt(value)
        for member, prefix in plan.header_maps:
            for key, value in (output.get(member) or {}).items():
                headers[prefix + key] = str(value)
        body, payload = b"", plan.payload
        if payload is not None and plan.payload_kind in ("blob", "string"):
            raw = output.get(payload)
            body = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
            headers.setdefault("Content-Type", "application/octet-stream")
        elif plan.body is not None and status != 204:
            document = output.get(payload) if payload is not None else output
            if document is not None:
                body = orjson.dumps(plan.body(document), default=json_default)
                headers["Content-Type"] = _JSON
        return HttpResponse(status, headers, body)

    def serialize_error(self, error: LaminaError, request_id: str) -> HttpResponse:
        document: dict[str, Any] = {
            "Type": fault_type(error),
            self._message_keys.get(error.code, "message"): error.message,
        }
        document.update(error.fields)
        headers = {
            "Content-Type": _JSON,
            "x-amzn-ErrorType": error.code,
            "x-amzn-RequestId": request_id,
        }
        headers.update(error.headers)
        return HttpResponse(error.status, headers, orjson.dumps(document, default=json_default))

    # -- plans ---------------------------------------------------------------------------

    def _plan_input(self, operation: OperationModel) -> _InputPlan:
        shape = operation.input_shape
        uri: list[tuple[str, str, TextParser]] = []
        query: list[tuple[str, str, bool, TextParser]] = []
        headers: list[tuple[str, str, TextParser]] = []
        header_maps: list[tuple[str, str]] = []
        query_map: tuple[str, bool] | None = None
        has_body_members = False
        for name, member in shape.members.items() if shape is not None else ():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "uri":
                uri.append((name, wire, _text_parser(member)))
            elif location == "querystring" and member.type_name == "map":
                query_map = (name, member.value.type_name == "list")
            elif location == "querystring":
                is_list = member.type_name == "list"
                item = member.member if is_list else member
                query.append((name, wire, is_list, _text_parser(item)))
            elif location == "header":
                headers.append((name, wire.lower(), _text_parser(member)))
            elif location == "headers":
                header_maps.append((name, wire.lower()))
            else:
                has_body_members = True
        payload, kind = _payload_kind(shape)
        body: Converter | None = None
        if shape is not None and kind == "structure" and payload is not None:
            body = self._codec.decoder(shape.members[payload])
        elif shape is not None and payload is None and has_body_members:
            body = self._codec.decoder(shape, body_only=True)
        route = _literal_query_keys(operation)
        return _InputPlan(
            uri=tuple(uri),
            query=tuple(query),
            query_map=query_map,
            claimed_query=frozenset(key for _, key, _, _ in query) | route,
            headers=tuple(headers),
            header_maps=tuple(header_maps),
            payload=payload,
            payload_kind=kind,
            body=body,
        )

    def _plan_output(self, operation: OperationModel) -> _OutputPlan:
        shape = operation.output_shape
        status_member: str | None = None
        headers: list[tuple[str, str, TextFormatter]] = []
        header_maps: list[tuple[str, str]] = []
        has_body_members = False
        for name, member in shape.members.items() if shape is not None else ():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "statusCode":
                status_member = name
            elif location == "header":
                headers.append((name, wire, _text_formatter(member, "rfc822")))
            elif location == "headers":
                header_maps.append((name, wire))
            elif location is None:
                has_body_members = True
        payload, kind = _payload_kind(shape)
        body: Converter | None = None
        if shape is not None and kind == "structure" and payload is not None:
            body = self._codec.encoder(shape.members[payload])
        elif shape is not None and payload is None and has_body_members:
            body = self._codec.encoder(shape, body_only=True)
        return _OutputPlan(
            status_member=status_member,
            default_status=int(operation.http.get("responseCode", 200)),
            headers=tuple(headers),
            header_maps=tuple(header_maps),
            payload=payload,
            payload_kind=kind,
            body=body,
        )


def _literal_query_keys(operation: OperationModel) -> frozenset[str]:
    """Query keys fixed by the requestUri (`?List=ALL`): never part of a query map."""
    query_text = str(operation.http.get("requestUri", "")).partition("?")[2]
    return frozenset(pair.partition("=")[0] for pair in query_text.split("&") if pair)


def _convert(parse: TextParser, text: str, member: str) -> Any:
    try:
        return parse(text)
    except (ValueError, TypeError) as exc:
        raise ValidationError(
            f"1 validation error detected: Value '{text}' at '{member}' "
            "failed to satisfy constraint: Member must be of the modeled type"
        ) from exc


def _load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise LaminaError(
            f"The request body is not valid JSON: {exc}",
            code="SerializationException",
            status=400,
        ) from None
