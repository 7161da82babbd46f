"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lamina.errors import LaminaError
from lamina.gateway.api.errors import anthropic_error, openai_body, openai_error
from lamina.gateway.api.wire import (
    EventStream,
    JSONBytes,
    anthropic_key,
    json_body,
    openai_key,
    unless_disconnected,
    watched,
)
from lamina.gateway.inbound import responses as responses_api
from lamina.gateway.providers.anthropic import NATIVE
from lamina.gateway.providers.openai_responses import NATIVE_RESPONSES
from lamina.gateway.service import GatewayService, StreamReply
from lamina.gateway.sse import DONE, named_event, openai_event


def openai_routes(service: GatewayService) -> list[BaseRoute]:
    async def chat_completions(request: Request) -> Response:
        try:
            key = service.keyring.authenticate(openai_key(request))
            body, size = await json_body(request)
            if body.get("stream"):
                reply, watch = await watched(request, service.chat_stream(key, body, size=size))
                return EventStream(sse_chunks(reply), reply.headers, watch)
            result = await unless_disconnected(
                request, service.chat(key, body, size=size))
            return JSONBytes(public(result.body), headers=dict(result.headers))
        except LaminaError as exc:
            return openai_error(exc)

    async def embeddings(request: Request) -> Response:
        try:
            key = service.keyring.authenticate(openai_key(request))
            body, size = await json_body(request)
            result = await unless_disconnected(request, service.embeddings(
                key, body, size=size))
            return JSONBytes(result.body, headers=dict(result.headers))
        except LaminaError as exc:
            return openai_error(exc)

    async def models(request: Request) -> Response:
        # The anthropic SDK lists models here too, and says so with its version header.
        anthropic = "anthropic-version" in request.headers
        try:
            key = service.keyring.authenticate(
                anthropic_key(request) if anthropic else openai_key(request))
        except LaminaError as exc:
            return anthropic_error(exc) if anthropic else openai_error(exc)
        names = service.model_names(key)
        if anthropic:
            return JSONBytes({"data": [{"type": "model", "id": name, "display_name": name,
                                        "created_at": "1970-01-01T00:00:00Z"}
                                       for name in names],
                              "has_more": False, "first_id": names[0] if names else None,
                              "last_id": names[-1] if names else None})
        return JSONBytes({"object": "list", "data": [_model(name) for name in names]})

    async def model(request: Request) -> Response:
        try:
            key = service.keyring.authenticate(openai_key(request))
        except LaminaError as exc:
            return openai_error(exc)
        name = request.path_params["name"]
        if name not in service.model_names(key):
            return JSONBytes({"error": {"message": f"model {name!r} does not exist",
                                        "type": "invalid_request_error", "param": None,
                                        "code": "model_not_found"}}, status_code=404)
        return JSONBytes(_model(name))

    async def responses(request: Request) -> Response:
        try:
            key = service.keyring.authenticate(openai_key(request))
            body, size = await json_body(request)
            chat = responses_api.chat_request(body)
            if chat.get("stream"):
                reply, watch = await watched(
                    request, service.chat_stream(key, chat, api="responses", size=size))
                return EventStream(_response_events(reply, body), reply.headers, watch)
            result = await unless_disconnected(
                request, service.chat(key, chat, api="responses", size=size))
            return JSONBytes(responses_api.response(result.body, body),
                             headers=dict(result.headers))
        except LaminaError as exc:
            return openai_error(exc)

    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{name:path}", model, methods=["GET"]),
    ]


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "lamina"}


def public(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without lamina's private members (a provider's native payload)."""
    if NATIVE not in answer and NATIVE_RESPONSES not in answer:
        return answer
    return {k: v for k, v in answer.items() if not k.startswith("_")}


async def sse_chunks(reply: StreamReply) -> AsyncGenerator[bytes, None]:
    try:
        if reply.verbatim is not None:
            async for chunk, sent in reply.verbatim:
                if sent is not None and NATIVE not in chunk and NATIVE_RESPONSES not in chunk:
                    yield sent  # the provider's own event, as it sent it
                elif (event := _event(chunk)) is not None:
                    yield event
        else:
            async for chunk in reply.chunks:
                if (event := _event(chunk)) is not None:
                    yield event
        yield DONE
    except LaminaError as exc:
        # Headers are gone: the error travels in the stream, as OpenAI sends it.
        yield openai_event(openai_body(exc))
    finally:
        await reply.close()


def _event(chunk: dict[str, Any]) -> bytes | None:
    if NATIVE in chunk or NATIVE_RESPONSES in chunk:
        if not chunk["choices"] and "usage" not in chunk:
            return None  # a carrier of a native event, nothing for chat clients
        chunk = public(chunk)
    return openai_event(chunk)


async def _response_events(reply: StreamReply, request: dict[str, object]
                           ) -> AsyncGenerator[bytes, None]:
    try:
        async for event in responses_api.events(reply.chunks, request):
            yield named_event(event)
    except LaminaError as exc:
        yield named_event(responses_api.error_event(exc.code, exc.message))
    finally:
        await reply.close()
