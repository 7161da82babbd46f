"""Anthropic-compatible endpoint: /v1/messages, routed to any provider."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lamina.errors import LaminaError
from lamina.gateway.api.errors import anthropic_body, anthropic_error
from lamina.gateway.api.wire import (
    EventStream,
    JSONBytes,
    anthropic_key,
    json_body,
    unless_disconnected,
    watched,
)
from lamina.gateway.inbound import anthropic as inbound
from lamina.gateway.service import GatewayService, StreamReply
from lamina.gateway.sse import anthropic_event


def anthropic_routes(service: GatewayService) -> list[BaseRoute]:
    async def messages(request: Request) -> Response:
        try:
            key = service.keyring.authenticate(anthropic_key(request))
            body, size = await json_body(request)
            chat = inbound.chat_request(body)
            model = str(body.get("model", ""))
            if chat.get("stream"):
                reply, watch = await watched(
                    request, service.chat_stream(key, chat, api="messages", size=size))
                return EventStream(_sse(reply, model), reply.headers, watch)
            result = await unless_disconnected(
                request, service.chat(key, chat, api="messages", size=size))
            return JSONBytes(inbound.message(result.body, model), headers=dict(result.headers))
        except LaminaError as exc:
            return anthropic_error(exc)

    async def count_tokens(request: Request) -> Response:
        try:
            key = service.keyring.authenticate(anthropic_key(request))
            body, _ = await json_body(request)
            tokens = await service.count_tokens(key, inbound.chat_request(body, counting=True))
            return JSONBytes({"input_tokens": tokens})
        except LaminaError as exc:
            return anthropic_error(exc)

    return [Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"])]


async def _sse(reply: StreamReply, model: str) -> AsyncGenerator[bytes, None]:
    try:
        async for event in inbound.events(reply.chunks, model):
            yield anthropic_event(event)
    except LaminaError as exc:
        yield anthropic_event(anthropic_body(exc))
    finally:
        await reply.close()
