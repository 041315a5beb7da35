"""FastAPI: `SubscriptionRouterFactory.create(manager)` gives an `APIRouter` serving GraphQL at
one path, over WebSocket (graphql-transport-ws), POST and Server-Sent Events (graphql-sse),
with GraphiQL for browsers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, WebSocket
from starlette.responses import Response

from ..graphiql import graphiql_page, serve_graphiql
from ..protocols.common import OnConnect, ProtocolOptions
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
        options: ProtocolOptions | None = None,
        graphiql: bool = True,
        graphiql_assets_url: str | None = None,
    ) -> APIRouter:
        """A router with the WebSocket, POST and SSE endpoints at `path`, and unless
        `graphiql=False` GraphiQL for a browser's GET.

        `on_connect(payload, request)` authenticates `connection_init` (see
        `WebSocketTransport`) and each SSE request (payload None); `options` sets timeouts
        and limits; `graphiql_assets_url` is where a self-hosted copy of GraphiQL's assets
        is (default: the CDN; see `fraiseql_fastapi.graphiql`).
        """
        router = APIRouter()
        sse = SSEEndpoint(manager, on_connect=on_connect, options=options)

        @router.websocket(path)
        async def graphql_ws(websocket: WebSocket) -> None:
            await serve_websocket(manager, websocket, on_connect, options)

        @router.post(path, include_in_schema=False)
        async def graphql_post(request: Request) -> Response:
            if sse.handles(request.scope):
                return sse.response()
            return await serve_http(manager, request)

        page = graphiql_page(assets_url=graphiql_assets_url) if graphiql else None

        # One route for the other methods: an SSE request (event streams, and PUT and DELETE of
        # the single connection mode), else GraphiQL for a browser's GET, else the 405.
        @router.api_route(path, methods=["GET", "HEAD", "PUT", "DELETE"], include_in_schema=False)
        async def graphql_get(request: Request) -> Response:
            if page is not None and not sse.handles(request.scope):
                return serve_graphiql(request, page)
            return sse.response()

        return router
