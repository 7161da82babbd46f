"""The gateway's ASGI app: the model-call endpoints by one dict lookup, the rest by
Starlette.

Starlette's app wraps each request in ServerErrorMiddleware and ExceptionMiddleware
and each route in a third exception handler — three closures around `send` that every
streamed chunk passes through — and walks the route table first: ~30 µs (warm) before
a chat completion's handler runs, in a budget of 1 ms for all of time to first token.
The gateway's endpoints render their own errors (every `LaminaError` becomes the
inbound API's error shape), so on the model-call endpoints all that those layers add
is the 500 for an unexpected exception, which is kept here. Every other request —
another method, a path with parameters, the admin API, an unknown path — goes to a
Starlette app of all the routes, as before (405s, 404s and redirects included).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]

# The endpoints that call a model: POST, no path parameters.
MODEL_CALLS = ("/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings")


class GatewayApp:
    def __init__(self, routes: Sequence[BaseRoute], direct: Iterable[str] = MODEL_CALLS) -> None:
        self.routes = list(routes)
        self._rest = Starlette(routes=self.routes)
        paths = set(direct)
        self._direct: dict[str, Endpoint] = {
            route.path: route.endpoint
            for route in self.routes
            if isinstance(route, Route) and route.path in paths and route.methods == {"POST"}
            and not route.param_convertors
        }  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self._direct.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
            else None
        )
        if endpoint is None:
            await self._rest(scope, receive, send)
            return
        try:
            response = await endpoint(Request(scope, receive, send))
        except Exception:
            # As Starlette's ServerErrorMiddleware: a 500, and the server logs the error.
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)
