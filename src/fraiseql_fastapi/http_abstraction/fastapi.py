"""FastAPI: `SubscriptionRouterFactory.create(manager)` gives an `APIRouter` serving GraphQL at
one path, over WebSocket (graphql-transport-ws) and POST, with GraphiQL for browsers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, WebSocket
from starlette.responses import Response

from ..graphiql import graphiql_page, serve_graphiql
from ..protocols.common import OnConnect, ProtocolOptions
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
        """A router with the WebSocket endpoint and the POST endpoint at `path`, and unless
        `graphiql=False` a GET endpoint serving GraphiQL to browsers.

        `on_connect(payload, websocket)` authenticates `connection_init` (see
        `WebSocketTransport`); `options` sets timeouts and limits;
        `graphiql_assets_url` is where a self-hosted copy of GraphiQL's assets is (default:
        the CDN; see `fraiseql_fastapi.graphiql`).
        """
        router = APIRouter()

        @router.websocket(path)
        async def graphql_ws(websocket: WebSocket) -> None:
            await serve_websocket(manager, websocket, on_connect, options)

        @router.post(path, include_in_schema=False)
        async def graphql_post(request: Request) -> Response:
            return await serve_http(manager, request)

        if graphiql:
            page = graphiql_page(assets_url=graphiql_assets_url)

            @router.api_route(path, methods=["GET", "HEAD"], include_in_schema=False)
            async def graphiql_get(request: Request) -> Response:
                return serve_graphiql(request, page)

        return router
