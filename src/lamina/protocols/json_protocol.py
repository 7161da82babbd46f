"""Server side of botocore's `json` protocol (CloudWatch Logs, SQS, KMS, Secrets Manager,
EventBridge).

Every call is `POST /` with `X-Amz-Target: <targetPrefix>.<Operation>` and the whole
input as a JSON body (`Content-Type: application/x-amz-json-1.0|1.1`). Output is the
JSON of the output shape. Errors are `{"__type": Code, "message": ...}` with the
error's status.

Services that moved from `query` to `json` (SQS) are marked `awsQueryCompatible`; their
clients still expect the legacy query error code, which travels in the
`x-amzn-query-error: <code>;<Sender|Receiver>` header (botocore reports it as the
error's Code and keeps the JSON one as QueryErrorCode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from botocore.model import ServiceModel

from lamina.errors import LaminaError
from lamina.protocols.json_shapes import Converter, JsonShapeCodec, json_default
from lamina.protocols.wire import HttpRequest, HttpResponse, ParsedRequest


def _empty_output(_value: Any) -> dict[str, Any]:
    return {}


class JsonProtocol:
    """`json` for one service model."""

    def __init__(self, model: ServiceModel) -> None:
        self.model = model
        metadata = model.metadata
        self.target_prefix: str = metadata.get("targetPrefix", "")
        self.content_type = f"application/x-amz-json-{metadata.get('jsonVersion', '1.0')}"
        self._query_compatible = "awsQueryCompatible" in metadata
        codec = JsonShapeCodec("unixtimestamp")
        self._operations: dict[str, str] = {}
        self._decoders: dict[str, Converter] = {}
        self._encoders: dict[str, Converter] = {}
        for name in model.operation_names:
            operation = model.operation_model(name)
            self._operations[f"{self.target_prefix}.{name}"] = name
            shape = operation.input_shape
            self._decoders[name] = codec.decoder(shape) if shape is not None else _empty_output
            out = operation.output_shape
            self._encoders[name] = codec.encoder(out) if out is not None else _empty_output
        # Legacy query codes, keyed by the JSON error code (the shape name).
        self._query_codes: dict[str, str] = {}
        for shape in model.error_shapes:
            legacy = shape.metadata.get("error", {}).get("code")
            if legacy:
                self._query_codes[shape.name] = legacy

    def operation_for(self, target: str | None) -> str | None:
        """The operation an `X-Amz-Target` value names, or None."""
        return self._operations.get(target or "")

    def parse_request(self, request: HttpRequest) -> ParsedRequest:
        target = request.headers.get("x-amz-target")
        operation = self.operation_for(target)
        if operation is None:
            raise LaminaError(
                f"Operation {target or '(no X-Amz-Target)'} is not supported by this service",
                code="UnknownOperationException",
                status=400,
            )
        return ParsedRequest(operation, self.parse(operation, request.body))

    def parse(self, operation: str, body: bytes) -> dict[str, Any]:
        # An empty body is an empty input; botocore always sends at least "{}".
        if not body.strip():
            return {}
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise LaminaError(
                f"The request body is not valid JSON: {exc}",
                code="SerializationException",
                status=400,
            ) from None
        parsed: dict[str, Any] = self._decoders[operation](document)
        return parsed

    def serialize_response(
        self, operation: str, output: Mapping[str, Any], request_id: str
    ) -> HttpResponse:
        document = self._encoders[operation](output)
        return HttpResponse(
            200,
            {"Content-Type": self.content_type, "x-amzn-RequestId": request_id},
            orjson.dumps(document, default=json_default),
        )

    def serialize_error(self, error: LaminaError, request_id: str) -> HttpResponse:
        document: dict[str, Any] = {"__type": error.code, "message": error.message}
        document.update(error.fields)
        headers = {"Content-Type": self.content_type, "x-amzn-RequestId": request_id}
        if self._query_compatible:
            fault = "Sender" if error.status < 500 else "Receiver"
            legacy = self._query_codes.get(error.code, error.code)
            headers["x-amzn-query-error"] = f"{legacy};{fault}"
        headers.update(error.headers)
        return HttpResponse(error.status, headers, orjson.dumps(document, default=json_default))
