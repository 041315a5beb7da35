"""The `WebSocketAdapter` protocol: everything the protocol handler needs from a WebSocket.

A framework is supported by implementing these few members over its own WebSocket object; the
FastAPI and Starlette adapters are examples, and so is `examples/custom_adapter.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


class WebSocketDisconnected(Exception):
    """Raised by `receive_text` when the client has gone."""

    def __init__(self, code: int = 1000) -> None:
        super().__init__(f"WebSocket disconnected with code {code}")
        self.code = code


@runtime_checkable
class WebSocketAdapter(Protocol):
    """A server-side WebSocket, before or after the handshake."""

    @property
    def subprotocols(self) -> Sequence[str]:
        """The subprotocols the client offered in its handshake."""
        ...

    @property
    def request(self) -> Any:
        """The framework's request/WebSocket object, handed to `on_connect` hooks."""
        ...

    @property
    def is_connected(self) -> bool:
        """True between a successful `accept` and the close, from either side."""
        ...

    async def accept(self, subprotocol: str | None) -> None:
        """Completes the handshake, selecting `subprotocol`."""
        ...

    async def receive_text(self) -> str:
        """The next text message. Raises `WebSocketDisconnected` when the client has gone, and
        `TypeError` for a binary message."""
        ...

    async def send_text(self, text: str) -> None:
        """Sends one text message."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the connection (idempotent)."""
        ...
