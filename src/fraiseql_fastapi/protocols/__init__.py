"""The protocols, one module each, with their message shapes and codes: graphql-transport-ws
(`graphql_transport_ws`), the legacy graphql-ws of subscriptions-transport-ws (`graphql_ws`)
and, later in this package, GraphQL over SSE; what the two WebSocket ones share is in
`websocket`. Each decides what to do with what the client sent; transports (`http_abstraction`)
do the I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from ..connection import Connection
from .common import OnConnect, OnRefresh, ProtocolOptions, ProtocolSocket
from .graphql_transport_ws import GRAPHQL_TRANSPORT_WS, GraphQLTransportWSProtocol
from .graphql_ws import GRAPHQL_WS, GraphQLWSProtocol

__all__ = ["WebSocketProtocol", "websocket_protocol"]


class WebSocketProtocol(Protocol):
    """What the WebSocket transport drives: one object per connection."""

    subprotocol: ClassVar[str]
    envelope: ClassVar[str]

    def __init__(
        self,
        connection: Connection,
        socket: ProtocolSocket,
        *,
        on_connect: OnConnect | None = None,
        on_refresh: OnRefresh | None = None,
        options: ProtocolOptions | None = None,
        request_context: Any = None,
    ) -> None: ...

    async def opened(self) -> None: ...
    async def received(self, text: str) -> None: ...
    async def received_binary(self) -> None: ...
    async def shutdown(self) -> None: ...
    def closed(self) -> None: ...


def websocket_protocol(
    offered: Sequence[str], options: ProtocolOptions
) -> type[WebSocketProtocol] | None:
    """The protocol to serve for the subprotocols a client offered (its first choice among
    those turned on: `options.graphql_transport_ws`, `options.graphql_ws`), or None."""
    enabled: dict[str, Any] = {}
    if options.graphql_transport_ws:
        enabled[GRAPHQL_TRANSPORT_WS] = GraphQLTransportWSProtocol
    if options.graphql_ws:
        enabled[GRAPHQL_WS] = GraphQLWSProtocol
    for name in offered:
        if name in enabled:
            chosen: type[WebSocketProtocol] = enabled[name]
            return chosen
    return None
