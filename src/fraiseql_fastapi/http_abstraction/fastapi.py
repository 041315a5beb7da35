"""FastAPI: `SubscriptionRouterFactory.create(manager)` gives an `APIRouter` serving GraphQL at
one path, over WebSocket (graphql-transport-ws), POST and Server-Sent Events (graphql-sse)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, WebSocket
from starlette.responses import Response

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
    ) -> APIRouter:
        """A router with the WebSocket, POST and SSE endpoints at `path`.

        `on_connect(payload, request)` authenticates `connection_init` (see
        `WebSocketTransport`) and each SSE request (payload None); `options` sets timeouts
        and limits.
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

        # GraphQL over SSE: event streams (GET) and the single connection mode (PUT, DELETE).
        @router.api_route(path, methods=["GET", "PUT", "DELETE"], include_in_schema=False)
        async def graphql_sse(request: Request) -> Response:
            return sse.response()

        return router
