"""The admin API, authenticated with lamina's root credentials:

    GET    /gateway/admin/keys                 list virtual keys (never their secrets)
    POST   /gateway/admin/keys                 create one; the secret is shown once
    GET    /gateway/admin/keys/{id}
    POST   /gateway/admin/keys/{id}/rotate     new secret, same key (limits, spend)
    POST   /gateway/admin/keys/{id}/revoke     (also DELETE /gateway/admin/keys/{id})
    GET    /gateway/admin/usage?group_by=key|model|provider|function&from=&to=
           (also at /gateway/usage)
    GET    /gateway/admin/calls?key=&model=&from=&to=&limit=
                                               the call log, newest first, with the
                                               redacted bodies of models that log them
    POST   /gateway/admin/reload               re-read the config file
    GET    /gateway/admin/deployments          each model's deployments and circuit state
    GET    /gateway/admin/prompts              every prompt template version
    POST   /gateway/admin/prompts              {"name", "model", "template"} → a new version

And, for Prometheus, `GET /gateway/metrics`: root credentials, or the bearer token of
`gateway.telemetry.metrics.token`, or nothing when `metrics.public` is true. Closed
by default because its labels name every key and model and its counters show spend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lamina.errors import LaminaError
from lamina.gateway.api.errors import openai_error
from lamina.gateway.api.wire import JSONBytes, bearer, json_body
from lamina.gateway.errors import InvalidGatewayRequest, Unauthenticated
from lamina.gateway.keys import VirtualKey, constant_time_equal, key_fields
from lamina.gateway.keystore import key_spec
from lamina.gateway.reports import call_log, usage_totals
from lamina.gateway.telemetry import METRICS_CONTENT_TYPE

if TYPE_CHECKING:
    from lamina.gateway.gateway import Gateway


def key_view(key: VirtualKey, spent: float) -> dict[str, Any]:
    return {**key_fields(key), "spent_usd": spent, "source": key.source}


def _time(raw: str | None, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise InvalidGatewayRequest(f"'{name}' must be unix seconds") from exc


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 100
    if not raw.isdigit():
        raise InvalidGatewayRequest("'limit' must be a positive integer")
    return int(raw)


def admin_routes(gateway: Gateway) -> list[BaseRoute]:
    service, store = gateway.service, gateway.store

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                if not gateway.is_root(bearer(request)):
                    raise Unauthenticated(
                        "the admin API needs lamina's root credentials: "
                        "'Authorization: Bearer SECRET_ACCESS_KEY'"
                    )
                result: Response = await handler(request)
                return result
            except LaminaError as exc:
                return openai_error(exc)

        return endpoint

    async def list_keys(_request: Request) -> Response:
        stored = await store.list()
        configured = [
            k
            for k in (service.keyring.find(c.key.id) for c in service.config.keys)
            if k is not None
        ]
        return JSONBytes(
            {"data": [key_view(k, service.ledger.spent(k)) for k in (*configured, *stored)]}
        )

    async def create_key(request: Request) -> Response:
        body, _ = await json_body(request)
        key, secret = await store.create(key_spec(body))
        return JSONBytes(dict(key_view(key, 0.0), key=secret), status_code=201)

    async def get_key(request: Request) -> Response:
        key = await store.get(request.path_params["id"])
        return JSONBytes(key_view(key, service.ledger.spent(key)))

    async def rotate_key(request: Request) -> Response:
        key, secret = await store.rotate(request.path_params["id"])
        return JSONBytes(dict(key_view(key, service.ledger.spent(key)), key=secret))

    async def revoke_key(request: Request) -> Response:
        key = await store.revoke(request.path_params["id"])
        return JSONBytes(key_view(key, service.ledger.spent(key)))

    async def usage(request: Request) -> Response:
        await gateway.drain()
        params = request.query_params
        rows = await usage_totals(
            gateway.engine,
            gateway.tables,
            params.get("group_by", "key"),
            _time(params.get("from"), "from"),
            _time(params.get("to"), "to"),
        )
        return JSONBytes({"data": rows})

    async def calls(request: Request) -> Response:
        await gateway.drain()
        params = request.query_params
        rows = await call_log(
            gateway.engine,
            gateway.tables,
            since=_time(params.get("from"), "from"),
            until=_time(params.get("to"), "to"),
            key=params.get("key"),
            model=params.get("model"),
            limit=_limit(params.get("limit")),
        )
        return JSONBytes({"data": rows})

    async def metrics(request: Request) -> Response:
        config = service.config.telemetry  # read per scrape: a reload may change it
        presented = bearer(request)
        allowed = (
            config.metrics_public
            or gateway.is_root(presented)
            or bool(
                config.metrics_token
                and presented
                and constant_time_equal(presented, config.metrics_token)
            )
        )
        if not allowed:
            return openai_error(
                Unauthenticated(
                    "GET /gateway/metrics needs lamina's root credentials or the metrics token "
                    "(gateway.telemetry.metrics.token) as 'Authorization: Bearer TOKEN'"
                )
            )
        return Response(service.telemetry.exposition(), media_type=METRICS_CONTENT_TYPE)

    async def list_prompts(_request: Request) -> Response:
        return JSONBytes(
            {
                "data": [
                    {"name": v.name, "version": v.version, "model": v.model, "template": v.template}
                    for versions in service.prompts().values()
                    for v in versions
                ]
            }
        )

    async def publish_prompt(request: Request) -> Response:
        body, _ = await json_body(request)
        fields = {k: body.get(k) for k in ("name", "model", "template")}
        if not all(isinstance(v, str) and v for v in fields.values()):
            raise InvalidGatewayRequest("'name', 'model' and 'template' are required strings")
        if fields["model"] not in service.config.models:
            raise InvalidGatewayRequest(f"model {fields['model']!r} does not exist")
        assert service.prompt_store is not None
        prompt = await service.prompt_store.publish(
            str(fields["name"]),
            str(fields["model"]),
            str(fields["template"]),
            service.config.prompts,
        )
        return JSONBytes(
            {
                "name": prompt.name,
                "version": prompt.version,
                "model": prompt.model,
                "template": prompt.template,
            },
            status_code=201,
        )

    async def deployments(_request: Request) -> Response:
        return JSONBytes({"data": service.deployments()})

    async def reload(_request: Request) -> Response:
        await gateway.reload()
        return JSONBytes({"reloaded": True, "models": list(service.config.models)})

    return [
        Route("/gateway/admin/keys", guarded(list_keys), methods=["GET"]),
        Route("/gateway/admin/keys", guarded(create_key), methods=["POST"]),
        Route("/gateway/admin/keys/{id}", guarded(get_key), methods=["GET"]),
        Route("/gateway/admin/keys/{id}", guarded(revoke_key), methods=["DELETE"]),
        Route("/gateway/admin/keys/{id}/rotate", guarded(rotate_key), methods=["POST"]),
        Route("/gateway/admin/keys/{id}/revoke", guarded(revoke_key), methods=["POST"]),
        Route("/gateway/admin/usage", guarded(usage), methods=["GET"]),
        Route("/gateway/usage", guarded(usage), methods=["GET"]),
        Route("/gateway/admin/calls", guarded(calls), methods=["GET"]),
        Route("/gateway/metrics", metrics, methods=["GET"]),
        Route("/gateway/admin/reload", guarded(reload), methods=["POST"]),
        Route("/gateway/admin/deployments", guarded(deployments), methods=["GET"]),
        Route("/gateway/admin/prompts", guarded(list_prompts), methods=["GET"]),
        Route("/gateway/admin/prompts", guarded(publish_prompt), methods=["POST"]),
    ]
