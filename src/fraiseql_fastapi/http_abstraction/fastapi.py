"""FastAPI: `SubscriptionRouterFactory.create(manager)` gives an `APIRouter` serving GraphQL at
one path, over WebSocket (graphql-transport-ws), POST and Server-Sent Events (graphql-sse),
with GraphiQL for browsers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, WebSocket
from starlette.responses import Response

from ..graphiql import graphiql_page, serve_graphiql
from ..protocols.common import OnConnect, OnRefresh, ProtocolOptions
from .http import ContextGetter
from .sse import SSEEndpoint
from .starlette import serve_http, serve_websocket

if TYPE_CHECKING:
    from ..manager import SubscriptionManager


class SubscriptionRouterFactory:
    """Builds FastAPI routers for a `SubscriptionManager`."""

    @staticmethod
    def create(
        manager: SubscriptionManager,
        *,
        path: str = "/graphql",
        on_connect: OnConnect | None = None,
        on_refresh: OnRefresh | None = None,
        options: ProtocolOptions | None = None,
        graphiql: bool = True,
        graphiql_assets_url: str | None = None,
        context_getter: ContextGetter | None = None,
    ) -> APIRouter:
        """A router with the WebSocket, POST and SSE endpoints at `path`, and unless
        `graphiql=False` GraphiQL for a browser's GET.

        `on_connect(payload, request)` authenticates `connection_init` (see
        `WebSocketTransport`) and each SSE request (payload None); `on_refresh(payload,
        context)` renews a WebSocket's credentials in band (a graphql-transport-ws `ping`
        with a payload; see `OnRefresh`); `options` sets timeouts
        and limits; `graphiql_assets_url` is where a self-hosted copy of GraphiQL's assets
        is (default: the CDN; see `fraiseql_fastapi.graphiql`).

        `context_getter` is a FastAPI dependency (it may use `Depends`, `Header`, `Cookie`;
        a `Request` parameter is the connection: annotate it `HTTPConnection` to serve
        WebSockets too), resolved for each POST, SSE request and WebSocket handshake. Its
        value is `info.context` for queries and mutations, `context` for an `on_connect`
        that takes one, and `ConnectionContext.request_context` for resolvers. A dependency
        that raises refuses the request: `HTTPException` for HTTP, `WebSocketException`
        (closing with its code) for the handshake.
        """
        router = APIRouter()
        sse = SSEEndpoint(manager, on_connect=on_connect, options=options)
        context_dependency = Depends(context_getter or _no_context)

        @router.websocket(path)
        async def graphql_ws(websocket: WebSocket, context: Any = context_dependency) -> None:
            # A dependency's cleanup (after its `yield`) must wait for the connection's end.
            await serve_websocket(
                manager,
                websocket,
                on_connect,
                options,
                context,
                detach=context_getter is None,
                on_refresh=on_refresh,
            )

        @router.post(path, include_in_schema=False)
        async def graphql_post(request: Request, context: Any = context_dependency) -> Response:
            if sse.handles(request.scope):
                return sse.response(context)
            return await serve_http(manager, request, context)

        page = graphiql_page(assets_url=graphiql_assets_url) if graphiql else None

        # One route for the other methods: an SSE request (event streams, and PUT and DELETE of
        # the single connection mode), else GraphiQL for a browser's GET, else the 405.
        @router.api_route(path, methods=["GET", "HEAD", "PUT", "DELETE"], include_in_schema=False)
        async def graphql_get(request: Request, context: Any = context_dependency) -> Response:
            if page is not None and not sse.handles(request.scope):
                return serve_graphiql(request, page)
            return sse.response(context)

        return router


async def _no_context() -> None:
    """The dependency when there is no `context_getter`: no request context (a coroutine:
    FastAPI runs a plain function in its thread pool, a thread hop per request)."""
    return None
