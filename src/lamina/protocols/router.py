"""The AWS API endpoint: SigV4 -> service -> protocol -> handler -> protocol.

One ASGI callable serves every AWS-compatible service. The credential scope of the
signature names the service (`.../us-east-1/lambda/aws4_request`), which picks the
binding; the binding's botocore model says which wire protocol to speak. Everything
per-service (models, route tables, shape converters) is built at construction, so a
request does no model lookups.

Any `LaminaError` is rendered in the protocol of the service the request was for;
anything else is logged and answered 500 ServiceException, never with its details.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import botocore.session
import orjson
from botocore.model import ServiceModel

from lamina.errors import LaminaError, RequestTooLarge, ServiceError
from lamina.protocols import query
from lamina.protocols.context import RequestContext, ServiceHandler
from lamina.protocols.json_protocol import JsonProtocol
from lamina.protocols.query import QueryProtocol
from lamina.protocols.request_ids import request_id as new_request_id
from lamina.protocols.rest_json import RestJsonProtocol
from lamina.protocols.sigv4 import SigV4Error, SigV4Verifier
from lamina.protocols.wire import HttpRequest, HttpResponse, WireProtocol, parse_query_string

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_log = logging.getLogger(__name__)

# Lambda's largest request is CreateFunction with a 50 MB zip, base64 in JSON.
DEFAULT_MAX_BODY_BYTES = 80 * 1024 * 1024


# Told of every call that got as far as a service (the audit log): its context, its
# parsed input and the error it ended with, or None. Must not block or raise.
CallObserver = Callable[[RequestContext, Mapping[str, Any], LaminaError | None], None]


@dataclass(frozen=True, slots=True)
class ServiceBinding:
    model_name: str  # botocore service model name: "lambda", "logs", "iam"...
    handler: ServiceHandler


@dataclass(frozen=True, slots=True)
class _Service:
    name: str
    protocol: WireProtocol
    handler: ServiceHandler


def protocol_for(model: ServiceModel) -> WireProtocol:
    """The server side of the protocol botocore clients speak for `model`."""
    # `resolved_protocol` (botocore >= 1.37) picks among a model's `protocols` the way
    # clients do; older botocore only has `protocol`.
    name = getattr(model, "resolved_protocol", None) or model.protocol
    if name == "rest-json":
        return RestJsonProtocol(model)
    if name == "json":
        return JsonProtocol(model)
    if name == "query":
        return QueryProtocol(model)
    raise ValueError(f"{model.service_name}: the {name!r} protocol is not supported")


class _Disconnected(Exception):
    """The client went away before sending the whole body; nothing to answer."""


class AwsRouter:
    """ASGI endpoint for all AWS APIs; mount it as a catch-all route."""

    def __init__(
        self,
        bindings: Mapping[str, ServiceBinding],
        verifier: SigV4Verifier,
        account_id: str,
        default_region: str,
        *,
        session: Any = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        observer: CallObserver | None = None,
    ) -> None:
        # Creating a botocore session is slow; one serves every binding.
        session = session or botocore.session.get_session()
        self._services: dict[str, _Service] = {}
        for signing_name, binding in bindings.items():
            model = session.get_service_model(binding.model_name)
            self._services[signing_name] = _Service(
                signing_name, protocol_for(model), binding.handler
            )
        self._verifier = verifier
        self._account_id = account_id
        self._default_region = default_region
        self._max_body_bytes = max_body_bytes
        self._observer = observer

    def protocol(self, signing_name: str) -> WireProtocol:
        """The protocol serving `signing_name`, for code that renders outside a request."""
        return self._services[signing_name].protocol

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
        path = raw_path.decode("utf-8", "replace")
        root = scope.get("root_path", "")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        client = scope.get("client")
        try:
            body = await self._read_body(receive, headers)
        except _Disconnected:
            return
        except LaminaError as error:
            response = _generic_error(error, new_request_id(), headers)
        else:
            response = await self.handle(
                scope["method"],
                path[len(root) :] if root and path.startswith(root) else path,
                scope.get("query_string", b"").decode("latin-1"),
                headers,
                body,
                source_ip=client[0] if client else "",
                signed_path=path,
            )
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.lower().encode("latin-1"), v.encode("latin-1", "replace"))
                    for k, v in response.headers.items()
                ]
                + [(b"content-length", str(len(response.body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    @property
    def max_body_bytes(self) -> int:
        return self._max_body_bytes

    def direct(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
        source_ip: str,
    ) -> Awaitable[HttpResponse]:
        """`handle` in the shape of http_direct's DirectHandler (served without ASGI)."""
        return self.handle(method, path, query, headers, body, source_ip=source_ip)

    async def handle(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        source_ip: str = "",
        signed_path: str | None = None,
    ) -> HttpResponse:
        """One request, from raw wire parts to the response (no ASGI involved).

        `path` is what routes; `signed_path` (default `path`) what the client signed,
        which differs only when the router is mounted under a prefix.
        """
        request_id = new_request_id()
        header_list = list(headers)
        joined: dict[str, str] = {}
        for name, value in header_list:
            name = name.lower()
            joined[name] = f"{joined[name]},{value}" if name in joined else value
        service: _Service | None = None
        ctx: RequestContext | None = None
        params: Mapping[str, Any] = {}
        try:
            identity = self._verifier.verify(
                method, signed_path or path, query_string, header_list, body
            )
            service = self._services.get(identity.service)
            if service is None:
                raise SigV4Error(
                    "InvalidSignatureException",
                    f"Credential should be scoped to a service this endpoint serves; "
                    f"'{identity.service}' is not one of {sorted(self._services)}.",
                )
            request = HttpRequest(method, path, parse_query_string(query_string), joined, body)
            parsed = service.protocol.parse_request(request)
            params = parsed.params
            ctx = RequestContext(
                request_id=request_id,
                access_key_id=identity.access_key_id,
                account_id=self._account_id,
                region=identity.region or self._default_region,
                service=service.name,
                operation=parsed.operation,
                headers=joined,
                source_ip=source_ip,
            )
            output = await service.handler(parsed.operation, parsed.params, ctx)
            self._observe(ctx, params, None)
            return service.protocol.serialize_response(parsed.operation, output, request_id)
        except LaminaError as error:
            self._observe(ctx, params, error)
            if service is None and isinstance(error, SigV4Error) and error.service:
                service = self._services.get(error.service)
            if service is None:
                return _generic_error(error, request_id, header_list)
            return service.protocol.serialize_error(error, request_id)
        except Exception:
            _log.exception("unhandled error in %s request %s", method, request_id)
            internal = ServiceError("An internal error occurred; the request id says which.")
            self._observe(ctx, params, internal)
            if service is None:
                return _generic_error(internal, request_id, header_list)
            return service.protocol.serialize_error(internal, request_id)

    def _observe(
        self, ctx: RequestContext | None, params: Mapping[str, Any], error: LaminaError | None
    ) -> None:
        if self._observer is None or ctx is None:
            return  # no observer, or the request never reached a service
        try:
            self._observer(ctx, params, error)
        except Exception:
            _log.exception("the call observer failed on request %s", ctx.request_id)

    async def _read_body(self, receive: Receive, headers: list[tuple[str, str]]) -> bytes:
        limit = self._max_body_bytes
        for name, value in headers:
            if name.lower() == "content-length" and value.isdigit() and int(value) > limit:
                raise RequestTooLarge(f"Request must be smaller than {limit} bytes.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"Request must be smaller than {limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _generic_error(
    error: LaminaError, request_id: str, headers: Iterable[tuple[str, str]]
) -> HttpResponse:
    """An error for a request whose service we do not know (no or unusable signature).

    Query-protocol clients (form bodies) read XML; every JSON client reads this JSON:
    `__type` serves the json protocol, `x-amzn-ErrorType` rest-json.
    """
    form = any(
        k.lower() == "content-type" and v.startswith("application/x-www-form-urlencoded")
        for k, v in headers
    )
    if form:
        return query.render_error(error, request_id)
    response_headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": error.code,
        "x-amzn-RequestId": request_id,
        **error.headers,
    }
    document = {"__type": error.code, "message": error.message}
    return HttpResponse(error.status, response_headers, orjson.dumps(document))
