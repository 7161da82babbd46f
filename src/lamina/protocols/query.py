"""Server side of botocore's `query` protocol (IAM, STS).

Requests are form fields (`Action=GetCallerIdentity&Version=2011-06-15&...`, in a
form-encoded POST body or the URL query) with nested values flattened into dotted
keys: a structure member is `Prefix.Member`, a list `Prefix.member.N` (or `Prefix.N`
when flattened), a map `Prefix.entry.N.key` / `.value`; an empty list is `Prefix=`.

Responses are XML:
    <OpResponse xmlns="..."><OpResult>...</OpResult>
      <ResponseMetadata><RequestId>...</RequestId></ResponseMetadata></OpResponse>
Errors:
    <ErrorResponse><Error><Type>Sender</Type><Code>..</Code><Message>..</Message></Error>
      <RequestId>..</RequestId></ErrorResponse>
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from botocore.model import ServiceModel, Shape

from lamina.errors import LaminaError, ValidationError
from lamina.protocols import values
from lamina.protocols.wire import HttpRequest, HttpResponse, ParsedRequest

# (form fields, every dotted prefix of a field name, key) -> value or _ABSENT
Reader = Callable[[Mapping[str, str], frozenset[str], str], Any]
# (output chunks, element name, value)
Writer = Callable[[list[str], str, Any], None]

_ABSENT = object()
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xD;"})


def _escape(text: str) -> str:
    return text.translate(_XML_ESCAPES)


def _prefixes(fields: Mapping[str, str]) -> frozenset[str]:
    """Every proper dotted prefix of every field name: `A.member.1.B` gives `A`,
    `A.member`, `A.member.1`; it tells whether a list item or structure is present."""
    found: set[str] = set()
    for name in fields:
        dot = name.find(".")
        while dot >= 0:
            found.add(name[:dot])
            dot = name.find(".", dot + 1)
    return frozenset(found)


class QueryProtocol:
    """`query` for one service model."""

    def __init__(self, model: ServiceModel) -> None:
        self.model = model
        self.api_version: str = model.metadata.get("apiVersion", "")
        namespace = model.metadata.get("xmlNamespace", "")
        self._xmlns = f' xmlns="{_escape(namespace)}"' if namespace else ""
        self._readers: dict[str, Reader] = {}
        self._writers: dict[str, Writer] = {}
        self._operations: dict[str, tuple[Reader | None, Writer | None, str]] = {}
        for name in model.operation_names:
            operation = model.operation_model(name)
            shape_in, shape_out = operation.input_shape, operation.output_shape
            wrapper = ""
            if shape_out is not None:
                wrapper = shape_out.serialization.get("resultWrapper", f"{name}Result")
            self._operations[name] = (
                self._reader(shape_in) if shape_in is not None else None,
                self._writer(shape_out) if shape_out is not None else None,
                wrapper,
            )

    # -- requests ------------------------------------------------------------------------

    def parse_request(self, request: HttpRequest) -> ParsedRequest:
        fields = {k: v[0] for k, v in request.query.items() if v}
        if request.body:
            # Form bodies are application/x-www-form-urlencoded: "+" is a space here.
            fields.update(parse_qsl(request.body.decode(), keep_blank_values=True))
        action = fields.get("Action", "")
        if action not in self._operations:
            raise LaminaError(
                f"Could not find operation {action} for version {fields.get('Version', '')}",
                code="InvalidAction",
                status=400,
            )
        return ParsedRequest(action, self.parse(action, fields))

    def parse(self, operation: str, fields: Mapping[str, str]) -> dict[str, Any]:
        reader = self._operations[operation][0]
        if reader is None:
            return {}
        parsed: dict[str, Any] = reader(fields, _prefixes(fields), "")
        return parsed

    def _reader(self, shape: Shape) -> Reader:
        type_name = shape.type_name
        if type_name not in ("structure", "list", "map"):
            return _scalar_reader(type_name)
        cached = self._readers.get(shape.name)
        if cached is not None:
            return cached
        readers = self._readers
        name = shape.name
        readers[name] = lambda f, p, k: readers[name](f, p, k)  # recursion forwarder
        if type_name == "structure":
            members = [
                (member_name, member.serialization.get("name", member_name), self._reader(member))
                for member_name, member in shape.members.items()
            ]

            def read_structure(
                fields: Mapping[str, str], prefixes: frozenset[str], key: str
            ) -> Any:
                if key and key not in prefixes:
                    return _ABSENT
                out: dict[str, Any] = {}
                for member_name, wire, read in members:
                    value = read(fields, prefixes, f"{key}.{wire}" if key else wire)
                    if value is not _ABSENT:
                        out[member_name] = value
                return out

            compiled: Reader = read_structure
        elif type_name == "list":
            item = self._reader(shape.member)
            infix = (
                ""
                if shape.serialization.get("flattened")
                else ("." + shape.member.serialization.get("name", "member"))
            )
            compiled = _list_reader(item, infix)
        else:
            compiled = self._map_reader(shape)
        readers[name] = compiled
        return compiled

    def _map_reader(self, shape: Shape) -> Reader:
        read_key, read_value = self._reader(shape.key), self._reader(shape.value)
        infix = "" if shape.serialization.get("flattened") else ".entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")

        def read_map(fields: Mapping[str, str], prefixes: frozenset[str], key: str) -> Any:
            out: dict[str, Any] = {}
            index = 1
            while f"{key}{infix}.{index}" in prefixes:
                entry = f"{key}{infix}.{index}"
                map_key = read_key(fields, prefixes, f"{entry}.{key_name}")
                if map_key is not _ABSENT:
                    value = read_value(fields, prefixes, f"{entry}.{value_name}")
                    out[map_key] = None if value is _ABSENT else value
                index += 1
            return out if out or key in fields else _ABSENT

        return read_map

    # -- responses -----------------------------------------------------------------------

    def serialize_response(
        self, operation: str, output: Mapping[str, Any], request_id: str
    ) -> HttpResponse:
        writer, wrapper = self._operations[operation][1:]
        out = [f"<{operation}Response{self._xmlns}>"]
        if writer is not None:
            writer(out, wrapper, output)
        out.append(
            f"<ResponseMetadata><RequestId>{_escape(request_id)}</RequestId>"
            f"</ResponseMetadata></{operation}Response>"
        )
        return _xml(200, "".join(out), request_id)

    def serialize_error(self, error: LaminaError, request_id: str) -> HttpResponse:
        return render_error(error, request_id, self._xmlns)

    def _writer(self, shape: Shape) -> Writer:
        type_name = shape.type_name
        if type_name not in ("structure", "list", "map"):
            fmt = shape.serialization.get("timestampFormat", "iso8601")

            def write_scalar(out: list[str], tag: str, value: Any) -> None:
                text = _escape(values.format_text(type_name, value, fmt))
                out.append(f"<{tag}>{text}</{tag}>")

            return write_scalar
        cached = self._writers.get(shape.name)
        if cached is not None:
            return cached
        writers = self._writers
        name = shape.name
        writers[name] = lambda o, t, v: writers[name](o, t, v)  # recursion forwarder
        if type_name == "structure":
            compiled = self._structure_writer(shape)
        elif type_name == "list":
            item = self._writer(shape.member)
            item_tag = shape.member.serialization.get("name", "member")
            compiled = _list_writer(item, item_tag, bool(shape.serialization.get("flattened")))
        else:
            compiled = self._map_writer(shape)
        writers[name] = compiled
        return compiled

    def _structure_writer(self, shape: Shape) -> Writer:
        members: dict[str, tuple[str, Writer]] = {}
        for member_name, member in shape.members.items():
            tag = member.serialization.get("name", member_name)
            if member.type_name == "list" and member.serialization.get("flattened"):
                # A flattened list repeats its items in place, named after the item.
                tag = member.member.serialization.get("name", tag)
            members[member_name] = (tag, self._writer(member))

        def write_structure(out: list[str], tag: str, value: Any) -> None:
            out.append(f"<{tag}>")
            for key, item in value.items():
                entry = members.get(key)
                if entry is not None and item is not None:
                    entry[1](out, entry[0], item)
            out.append(f"</{tag}>")

        return write_structure

    def _map_writer(self, shape: Shape) -> Writer:
        write_key, write_value = self._writer(shape.key), self._writer(shape.value)
        key_tag = shape.key.serialization.get("name", "key")
        value_tag = shape.value.serialization.get("name", "value")
        flattened = bool(shape.serialization.get("flattened"))

        def write_map(out: list[str], tag: str, value: Any) -> None:
            if not flattened:
                out.append(f"<{tag}>")
            for map_key, map_value in value.items():
                out.append(f"<{tag}>" if flattened else "<entry>")
                write_key(out, key_tag, map_key)
                if map_value is not None:
                    write_value(out, value_tag, map_value)
                out.append(f"</{tag}>" if flattened else "</entry>")
            if not flattened:
                out.append(f"</{tag}>")

        return write_map


def _scalar_reader(type_name: str) -> Reader:
    def read_scalar(fields: Mapping[str, str], _prefixes: frozenset[str], key: str) -> Any:
        text = fields.get(key)
        if text is None:
            return _ABSENT
        try:
            return values.parse_text(type_name, text)
        except ValueError as exc:
            raise ValidationError(
                f"1 validation error detected: Value '{text}' at '{key}' "
                f"failed to satisfy constraint: Member must be of type {type_name}"
            ) from exc

    return read_scalar


def _list_reader(item: Reader, infix: str) -> Reader:
    def read_list(fields: Mapping[str, str], prefixes: frozenset[str], key: str) -> Any:
        out: list[Any] = []
        index = 1
        while True:
            value = item(fields, prefixes, f"{key}{infix}.{index}")
            if value is _ABSENT:
                break
            out.append(value)
            index += 1
        if out:
            return out
        # botocore sends an empty list as `Key=` so it can be told from an absent one.
        return [] if fields.get(key) == "" else _ABSENT

    return read_list


def _list_writer(item: Writer, item_tag: str, flattened: bool) -> Writer:
    def write_list(out: list[str], tag: str, value: Any) -> None:
        if flattened:
            for element in value:
                item(out, tag, element)
            return
        out.append(f"<{tag}>")
        for element in value:
            item(out, item_tag, element)
        out.append(f"</{tag}>")

    return write_list


def render_error(error: LaminaError, request_id: str, xmlns_attribute: str = "") -> HttpResponse:
    """The query protocol's `<ErrorResponse>`; also used before the service is known."""
    fault = "Sender" if error.sender_fault or error.status < 500 else "Receiver"
    extra = "".join(
        f"<{_escape(k)}>{_escape(str(v))}</{_escape(k)}>" for k, v in error.fields.items()
    )
    body = (
        f"<ErrorResponse{xmlns_attribute}><Error><Type>{fault}</Type>"
        f"<Code>{_escape(error.code)}</Code><Message>{_escape(error.message)}</Message>"
        f"{extra}</Error><RequestId>{_escape(request_id)}</RequestId></ErrorResponse>"
    )
    response = _xml(error.status, body, request_id)
    response.headers.update(error.headers)
    return response


def _xml(status: int, body: str, request_id: str) -> HttpResponse:
    return HttpResponse(
        status,
        {"Content-Type": "text/xml", "x-amzn-RequestId": request_id},
        body.encode(),
    )
