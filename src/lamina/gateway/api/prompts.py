"""Prompt templates as REST endpoints, for any virtual key allowed the template's model:

    GET  /gateway/prompts                      names, versions and variables
    POST /gateway/prompts/{name}[?stream=true] {"variables": {...}, "version": N?}
                                               → a chat completion (or its SSE chunks)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from lamina.errors import LaminaError
from lamina.gateway import prompts
from lamina.gateway.api.errors import openai_error
from lamina.gateway.api.openai import public, sse_chunks
from lamina.gateway.api.wire import JSONBytes, json_body, openai_key, unless_disconnected
from lamina.gateway.errors import InvalidGatewayRequest
from lamina.gateway.service import GatewayService


def prompt_routes(service: GatewayService) -> list[BaseRoute]:
    async def listing(request: Request) -> Response:
        try:
            key = service.keyring.authenticate(openai_key(request))
        except LaminaError as exc:
            return openai_error(exc)
        return JSONBytes({"data": [
            {"name": name, "model": versions[-1].model,
             "versions": [v.version for v in versions],
             "variables": prompts.placeholders(versions[-1].template)}
            for name, versions in sorted(service.prompts().items())
            if key.allows(versions[-1].model)]})

    async def complete(request: Request) -> Response:
        try:
            key = service.keyring.authenticate(openai_key(request))
            body, size = await json_body(request)
            version = body.get("version")
            if version is not None and not isinstance(version, int):
                raise InvalidGatewayRequest("'version' must be an integer")
            prompt = prompts.choose(service.prompts(), request.path_params["name"],
                                    version)
            stream = request.query_params.get("stream", "").lower() in ("1", "true", "yes")
            chat = prompts.chat_request(prompt, body, stream)
            if stream:
                reply = await unless_disconnected(
                    request, service.chat_stream(key, chat, api="prompt", size=size))
                return StreamingResponse(sse_chunks(reply), media_type="text/event-stream",
                                         headers=dict(reply.headers))
            result = await unless_disconnected(
                request, service.chat(key, chat, api="prompt", size=size))
            return JSONBytes(public(result.body), headers=dict(result.headers)
                             | {"x-lamina-prompt-version": str(prompt.version)})
        except LaminaError as exc:
            return openai_error(exc)

    return [
        Route("/gateway/prompts", listing, methods=["GET"]),
        Route("/gateway/prompts/{name}", complete, methods=["POST"]),
    ]
