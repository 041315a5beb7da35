"""Starlette: the WebSocket adapter, a route serving GraphQL on one path (WebSocket, POST, and
GraphQL over SSE), and `create_subscription_app` to add it to an application."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..graphiql import graphiql_page, serve_graphiql
from ..protocols.common import OnConnect, OnRefresh, ProtocolOptions
from .adapter import WebSocketAdapter, WebSocketDisconnected
from .http import ContextGetter, execute_post, get_request_context
from .native import NativeWebSocketAdapter, offers_native
from .sse import SSEEndpoint
from .websocket import WebSocketTransport

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..manager import SubscriptionManager


class StarletteWebSocketAdapter:
    """`WebSocketAdapter` over a Starlette (and so FastAPI) WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        #: The ASGI `send` under the WebSocket, for the hot path of `send_text` (None: always
        #: go through `WebSocket.send_text`).
        self._asgi_send: Send | None = getattr(websocket, "_send", None)

    @property
    def subprotocols(self) -> Sequence[str]:
        return list(self._ws.scope.get("subprotocols") or [])

    @property
    def request(self) -> WebSocket:
        return self._ws

    @property
    def is_connected(self) -> bool:
        return (
            self._ws.application_state == WebSocketState.CONNECTED
            and self._ws.client_state == WebSocketState.CONNECTED
        )

    async def accept(self, subprotocol: str | None) -> None:
        await self._ws.accept(subprotocol=subprotocol)

    async def receive_text(self) -> str:
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnected(int(message.get("code") or 1000))
        text = message.get("text")
        if text is None:
            raise TypeError("binary WebSocket message")
        return str(text)

    async def send_text(self, text: str) -> None:
        ws = self._ws
        send = self._asgi_send
        if send is None or ws.application_state is not WebSocketState.CONNECTED:
            await ws.send_text(text)
            return
        # What `WebSocket.send` does for a `websocket.send` once connected, without its
        # per-message checks of the message type and state.
        try:
            await send({"type": "websocket.send", "text": text})
        except OSError as error:
            ws.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(code=1006) from error

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._ws.application_state != WebSocketState.DISCONNECTED:
            await self._ws.close(code, reason)


async def serve_websocket(
    manager: SubscriptionManager,
    websocket: WebSocket,
    on_connect: OnConnect | None = None,
    options: ProtocolOptions | None = None,
    request_context: Any = None,
    *,
    detach: bool = True,
    on_refresh: OnRefresh | None = None,
) -> None:
    """Serves GraphQL on a Starlette/FastAPI WebSocket (graphql-transport-ws or graphql-ws);
    `request_context` is what the route's `context_getter` returned for the handshake;
    `on_refresh` renews a connection's credentials in band (see `OnRefresh`).

    When the server hands the socket over to the core, this returns once it has (`detach`),
    and the connection lives on in the core; `detach=False` keeps the handler (and what it
    holds, such as a FastAPI dependency's session) until the connection ends."""
    options = options or ProtocolOptions()
    adapter: WebSocketAdapter = StarletteWebSocketAdapter(websocket)
    if offers_native(websocket):
        adapter = NativeWebSocketAdapter(adapter, manager, options.max_message_size)
    transport = WebSocketTransport(
        manager,
        adapter,
        on_connect=on_connect,
        on_refresh=on_refresh,
        options=options,
        request_context=request_context,
    )
    await transport.run(detach=detach)


async def serve_http(
    manager: SubscriptionManager, request: Request, request_context: Any = None
) -> Response:
    """Answers a GraphQL POST (queries, mutations and introspection), with `request_context`
    as their `info.context` when not None."""
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"errors": [{"message": "The body must be JSON"}]}, status_code=400)
    status, result = await execute_post(manager, body, request_context)
    return JSONResponse(result, status_code=status)


class SubscriptionRoute(BaseRoute):
    """GraphQL on one path: WebSocket (graphql-transport-ws), POST, Server-Sent Events
    (graphql-sse, both modes), and GraphiQL for a browser's GET unless `graphiql=False`
    (`graphiql_assets_url`: see `fraiseql_fastapi.graphiql`). Use inside `Router`, `Mount` or
    an application's `routes`. `context_getter(request)` (may be async; the request is a
    `Request` or a `WebSocket`) gives each request its context (see `ContextGetter`)."""

    def __init__(
        self,
        path: str,
        manager: SubscriptionManager,
        *,
        on_connect: OnConnect | None = None,
        on_refresh: OnRefresh | None = None,
        options: ProtocolOptions | None = None,
        graphiql: bool = True,
        graphiql_assets_url: str | None = None,
        context_getter: ContextGetter | None = None,
    ) -> None:
        self.path = path
        self.manager = manager
        self.on_connect = on_connect
        self.on_refresh = on_refresh
        self.options = options
        self.context_getter = context_getter
        self.graphiql_page = graphiql_page(assets_url=graphiql_assets_url) if graphiql else None
        self.sse = SSEEndpoint(
            manager, on_connect=on_connect, options=options, context_getter=context_getter
        )

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] in ("http", "websocket"):
            # The path below the mount point when inside a `Mount` (which sets root_path).
            route_path = scope.get("route_path") or get_route_path(scope)
            if route_path == self.path:
                return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        from starlette.routing import NoMatchFound

        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            request_context = await get_request_context(self.context_getter, websocket)
            await serve_websocket(
                self.manager,
                websocket,
                self.on_connect,
                self.options,
                request_context,
                on_refresh=self.on_refresh,
            )
            return
        if self.sse.handles(scope):
            await self.sse(scope, receive, send)
            return
        request = Request(scope, receive)
        if self.graphiql_page is not None and request.method in ("GET", "HEAD"):
            response: Response = serve_graphiql(request, self.graphiql_page)
        elif request.method != "POST":
            response = JSONResponse(
                {"errors": [{"message": "Use POST, a WebSocket or Server-Sent Events"}]},
                status_code=405,
                headers={"Allow": "POST" if self.graphiql_page is None else "GET, POST"},
            )
        else:
            request_context = await get_request_context(self.context_getter, request)
            response = await serve_http(self.manager, request, request_context)
        await response(scope, receive, send)


def create_subscription_app(
    app: Starlette,
    manager: SubscriptionManager,
    *,
    path: str = "/graphql",
    on_connect: OnConnect | None = None,
    on_refresh: OnRefresh | None = None,
    options: ProtocolOptions | None = None,
    graphiql: bool = True,
    graphiql_assets_url: str | None = None,
    context_getter: ContextGetter | None = None,
) -> Starlette:
    """Adds GraphQL subscriptions (and POST queries and mutations, and GraphiQL for browsers
    unless `graphiql=False`) at `path` to a Starlette app; returns it. Pass
    `lifespan=manager.lifespan` when creating the app so shutdown closes connections.
    `context_getter`: see `SubscriptionRoute`."""
    app.router.routes.append(
        SubscriptionRoute(
            path,
            manager,
            on_connect=on_connect,
            on_refresh=on_refresh,
            options=options,
            graphiql=graphiql,
            graphiql_assets_url=graphiql_assets_url,
            context_getter=context_getter,
        )
    )
    return app
