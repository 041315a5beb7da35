"""The HTTP abstraction layer: the `WebSocketAdapter` protocol, the graphql-transport-ws
handler, and the adapters for FastAPI (`.fastapi`) and Starlette (`.starlette`)."""

from .adapter import WebSocketAdapter, WebSocketDisconnected
from .protocol import (
    GRAPHQL_TRANSPORT_WS,
    CloseCode,
    GraphQLTransportWSHandler,
    MessageType,
    OnConnect,
    ProtocolOptions,
)

__all__ = [
    "GRAPHQL_TRANSPORT_WS",
    "CloseCode",
    "GraphQLTransportWSHandler",
    "MessageType",
    "OnConnect",
    "ProtocolOptions",
    "WebSocketAdapter",
    "WebSocketDisconnected",
]
