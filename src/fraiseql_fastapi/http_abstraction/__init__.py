"""The HTTP abstraction layer: the `WebSocketAdapter` protocol, the WebSocket transport that
serves an adapter with the protocol its client chose, and the adapters for FastAPI (`.fastapi`)
and Starlette (`.starlette`)."""

from ..protocols.common import OnConnect, OnRefresh, ProtocolOptions
from ..protocols.graphql_transport_ws import GRAPHQL_TRANSPORT_WS, CloseCode, MessageType
from .adapter import WebSocketAdapter, WebSocketDisconnected
from .websocket import WebSocketTransport

__all__ = [
    "GRAPHQL_TRANSPORT_WS",
    "CloseCode",
    "MessageType",
    "OnConnect",
    "OnRefresh",
    "ProtocolOptions",
    "WebSocketAdapter",
    "WebSocketDisconnected",
    "WebSocketTransport",
]
