"""JSON documents <-> service values, compiled once per botocore shape.

Both JSON protocols (`json` and `rest-json`) carry structures as JSON objects whose
members are botocore shapes. On the way in we check each value's JSON type against
the shape (AWS answers a mismatch with 400 SerializationException) and turn base64
blobs into bytes and epoch numbers into datetimes; on the way out we do the reverse.

Shapes are compiled into plain closures so the hot path never walks botocore `Shape`
objects. An encoder for a shape that holds no blob, timestamp, float or renamed
member is the identity, so most outputs go straight to orjson untouched.
Containers are cached by shape name; recursive shapes resolve through a forwarder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from botocore.model import Shape

from lamina.errors import LaminaError
from lamina.protocols import values

Converter = Callable[[Any], Any]

_INTEGER_TYPES = frozenset({"integer", "long", "short", "byte", "bigInteger"})
_FLOAT_TYPES = frozenset({"float", "double", "bigDecimal"})


class _Mismatch(Exception):
    """A JSON value of the wrong type; carries the member path for the message."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected
        self.path: list[str] = []


def _identity(value: Any) -> Any:
    return value


def _is_body_member(shape: Shape) -> bool:
    return "location" not in shape.serialization


class JsonShapeCodec:
    """Compiles shapes into converters; one per protocol instance (caches are per model)."""

    def __init__(self, default_timestamp_format: str = "unixtimestamp") -> None:
        self._timestamp_format = default_timestamp_format
        self._decoders: dict[str, Converter] = {}
        self._encoders: dict[str, Converter | None] = {}

    # -- public entry points -------------------------------------------------------------

    def decoder(self, shape: Shape, *, body_only: bool = False) -> Converter:
        """JSON value -> service value; raises 400 SerializationException on a mismatch.

        `body_only` keeps just the members without an HTTP location (rest-json bodies).
        """
        inner = self._compile_struct_decoder(shape, body_only) if body_only else self._dec(shape)

        def decode(value: Any) -> Any:
            try:
                return inner(value)
            except _Mismatch as exc:
                where = ".".join(reversed(exc.path)) or shape.name
                raise LaminaError(
                    f"Expected {exc.expected} at '{where}'",
                    code="SerializationException",
                    status=400,
                ) from None

        return decode

    def encoder(self, shape: Shape, *, body_only: bool = False) -> Converter:
        """Service value -> JSON-ready value (base64 blobs, epoch timestamps...)."""
        compiled = (
            self._compile_struct_encoder(shape, body_only, force=True)
            if body_only
            else self._enc(shape)
        )
        return compiled or _identity

    # -- decoding ------------------------------------------------------------------------

    def _dec(self, shape: Shape) -> Converter:
        type_name = shape.type_name
        if type_name in ("structure", "list", "map") and not _is_document(shape):
            name = shape.name
            cached = self._decoders.get(name)
            if cached is not None:
                return cached
            # Placeholder first: a recursive shape compiles to a call through the cache.
            decoders = self._decoders
            decoders[name] = lambda value: decoders[name](value)
            if type_name == "structure":
                compiled = self._compile_struct_decoder(shape, False)
            elif type_name == "list":
                compiled = self._compile_list_decoder(shape)
            else:
                compiled = self._compile_map_decoder(shape)
            decoders[name] = compiled
            return compiled
        return self._scalar_decoder(shape)

    def _compile_struct_decoder(self, shape: Shape, body_only: bool) -> Converter:
        members: dict[str, tuple[str, Converter]] = {}
        for name, member in shape.members.items():
            if body_only and not _is_body_member(member):
                continue
            members[member.serialization.get("name", name)] = (name, self._dec(member))

        def decode_structure(value: Any) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise _Mismatch("an object")
            out: dict[str, Any] = {}
            for key, item in value.items():
                entry = members.get(key)
                # Unknown members are ignored, as AWS does: newer clients send newer fields.
                if entry is None or item is None:
                    continue
                try:
                    out[entry[0]] = entry[1](item)
                except _Mismatch as exc:
                    exc.path.append(entry[0])
                    raise
            return out

        return decode_structure

    def _compile_list_decoder(self, shape: Shape) -> Converter:
        item_decoder = self._dec(shape.member)

        def decode_list(value: Any) -> list[Any]:
            if not isinstance(value, list):
                raise _Mismatch("an array")
            return [None if item is None else item_decoder(item) for item in value]

        return decode_list

    def _compile_map_decoder(self, shape: Shape) -> Converter:
        value_decoder = self._dec(shape.value)

        def decode_map(value: Any) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise _Mismatch("an object")
            return {k: None if v is None else value_decoder(v) for k, v in value.items()}

        return decode_map

    def _scalar_decoder(self, shape: Shape) -> Converter:
        type_name = shape.type_name
        if _is_document(shape):
            return _identity
        if type_name == "string":
            return _checked(str, "a string")
        if type_name == "boolean":
            return _checked(bool, "a boolean")
        if type_name in _INTEGER_TYPES:

            def decode_integer(value: Any) -> int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise _Mismatch("an integer")
                return value

            return decode_integer
        if type_name in _FLOAT_TYPES:
            return _raising(values.parse_float, "a number")
        if type_name == "blob":

            def decode_blob(value: Any) -> bytes:
                if not isinstance(value, str):
                    raise _Mismatch("a base64 string")
                try:
                    return values.decode_blob(value)
                except ValueError:
                    raise _Mismatch("a base64 string") from None

            return decode_blob
        if type_name == "timestamp":
            return _raising(values.parse_timestamp, "a timestamp")
        return _identity

    # -- encoding ------------------------------------------------------------------------

    def _enc(self, shape: Shape) -> Converter | None:
        """The encoder for `shape`, or None when the value can go to JSON as it is."""
        type_name = shape.type_name
        if type_name in ("structure", "list", "map") and not _is_document(shape):
            name = shape.name
            if name in self._encoders:
                return self._encoders[name]
            encoders = self._encoders
            # Recursion: the forwarder is not the identity, so a recursive shape always
            # encodes; that is slower but never wrong.
            encoders[name] = lambda value: (encoders[name] or _identity)(value)
            compiled: Converter | None
            if type_name == "structure":
                compiled = self._compile_struct_encoder(shape, False, force=False)
            elif type_name == "list":
                item = self._enc(shape.member)
                compiled = None if item is None else _list_encoder(item)
            else:
                item = self._enc(shape.value)
                compiled = None if item is None else _map_encoder(item)
            encoders[name] = compiled
            return compiled
        if type_name == "blob":
            return _encode_blob
        if type_name == "timestamp":
            fmt = shape.serialization.get("timestampFormat", self._timestamp_format)
            return lambda value: values.format_timestamp(value, fmt)
        if type_name in _FLOAT_TYPES:
            return _encode_float
        return None

    def _compile_struct_encoder(
        self, shape: Shape, body_only: bool, *, force: bool
    ) -> Converter | None:
        members: dict[str, tuple[str, Converter | None]] = {}
        plain = True
        for name, member in _members(shape, body_only):
            wire_name = member.serialization.get("name", name)
            encoder = self._enc(member)
            members[name] = (wire_name, encoder)
            plain = plain and encoder is None and wire_name == name
        if plain and not force:
            return None

        def encode_structure(value: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, item in value.items():
                entry = members.get(key)
                if entry is None or item is None:
                    continue
                wire_name, encoder = entry
                out[wire_name] = item if encoder is None else encoder(item)
            return out

        return encode_structure


def _members(shape: Shape, body_only: bool) -> Iterable[tuple[str, Shape]]:
    for name, member in shape.members.items():
        if body_only and not _is_body_member(member):
            continue
        yield name, member


def _is_document(shape: Shape) -> bool:
    return bool(getattr(shape, "is_document_type", False))


def _checked(kind: type, expected: str) -> Converter:
    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise _Mismatch(expected)
        return value

    return check


def _raising(parse: Callable[[Any], Any], expected: str) -> Converter:
    def convert(value: Any) -> Any:
        try:
            return parse(value)
        except (ValueError, TypeError, OverflowError):
            raise _Mismatch(expected) from None

    return convert


def _list_encoder(item: Converter) -> Converter:
    return lambda value: [None if v is None else item(v) for v in value]


def _map_encoder(item: Converter) -> Converter:
    return lambda value: {k: None if v is None else item(v) for k, v in value.items()}


def _encode_blob(value: Any) -> Any:
    return values.encode_blob(value)


def _encode_float(value: Any) -> Any:
    return values.format_float(float(value))


def json_default(value: Any) -> Any:
    """orjson's fallback for what a service may leave in place (bytes, Decimal, sets)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return values.encode_blob(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Decimal):
        return float(value)
    return str(value)
