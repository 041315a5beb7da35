"""`NativeWebSocketProtocol`: uvicorn's sans-I/O WebSocket protocol, able to hand a socket over.

It offers the `fraiseql.native` scope extension on plain-TCP WebSockets. A `websocket.accept`
message carrying `fraiseql.native.adopt` (a callable) is answered as usual (the 101 response,
with the chosen subprotocol), after which the socket leaves uvicorn: reading stopped before the
response went out, the response flushed, a duplicate of its file descriptor handed to the
callable, and the asyncio transport dropped without closing the connection. uvicorn no longer
counts it; the application (the core) closes it, and the manager's shutdown does on exit.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.http11 import Request

from . import ADOPT_KEY, NATIVE_EXTENSION

__all__ = ["NativeWebSocketProtocol"]

#: How long the 101 response may take to leave the transport's buffer, in seconds.
FLUSH_TIMEOUT = 5.0


class NativeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (`--ws fraiseql_fastapi.native.uvicorn:NativeWebSocketProtocol`)
    whose sockets a GraphQL route may hand over to the Rust core."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # No per-message compression: the core writes frames as they are. Turned off in the
        # server's config, which only this class reads it from, so that uvicorn's constructor
        # builds the handshake's `ServerProtocol` once, without the extension.
        config.ws_per_message_deflate = False
        super().__init__(config, server_state, app_state, _loop)
        self.adopted = False
        #: The HTTP protocol that upgraded the connection (see `_release_upgraded_from`).
        self._upgraded_from: asyncio.BaseProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._upgraded_from = transport.get_protocol()
        super().connection_made(transport)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # Over TLS terminated here the socket carries TLS records: the Python path serves.
        if self.response.status_code == 101 and self.scheme == "ws":
            # The core keeps the connection alive as uvicorn would (`--ws-ping-interval`).
            self.scope["extensions"][NATIVE_EXTENSION] = {
                "ping_interval": self.config.ws_ping_interval or None,
                "ping_timeout": self.config.ws_ping_timeout or None,
            }

    def connection_lost(self, exc: Exception | None) -> None:
        if self.adopted:  # our transport dropped; the connection lives on in the core
            self.stop_keepalive()
            _break_transport_cycle(self.transport)
            return
        self._release_upgraded_from()  # a WebSocket uvicorn served to the end
        super().connection_lost(exc)

    async def send(self, message: ASGISendEvent) -> None:
        fields: dict[str, Any] = dict(message)
        adopt: Callable[[int], None] | None = (
            fields.pop(ADOPT_KEY, None) if message["type"] == "websocket.accept" else None
        )
        if adopt is None:
            await super().send(message)
            return
        # Nothing more is read here: whatever the client sends after the 101 stays in the
        # socket for the core to read.
        self.transport.pause_reading()
        self.read_paused = True
        await super().send(fields)  # type: ignore[arg-type]
        self.stop_keepalive()  # the application keeps the connection alive from now on
        await self._flushed()
        sock = self.transport.get_extra_info("socket")
        if sock is None or self.transport.is_closing():
            raise ClientDisconnected()
        fd = os.dup(sock.fileno())
        self.adopted = True
        self.connections.discard(self)
        self.transport.abort()  # closes its own descriptor only: the connection stays open
        self._release_upgraded_from()
        try:
            adopt(fd)
        except BaseException:
            os.close(fd)
            raise

    def _release_upgraded_from(self) -> None:
        """Frees the HTTP protocol that upgraded the connection now, not at the cyclic GC's
        next full pass: its `connection_lost` never runs after an upgrade, which is where
        uvicorn's httptools protocol drops its parser (which holds the protocol's callbacks).
        In a burst of handshakes those cycles pile up, and their memory stays fragmented."""
        upgraded_from, self._upgraded_from = self._upgraded_from, None
        if upgraded_from is not None and hasattr(upgraded_from, "parser"):
            upgraded_from.parser = None

    async def _flushed(self) -> None:
        """Waits until the transport has written everything it buffered (the 101)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_TIMEOUT
        while self.transport.get_write_buffer_size() and not self.transport.is_closing():
            if loop.time() > deadline:
                raise ClientDisconnected()
            await asyncio.sleep(0.001)


def _break_transport_cycle(transport: asyncio.BaseTransport) -> None:
    """Frees an aborted asyncio socket transport when its last reference goes, not at the cyclic
    GC's next full pass: it keeps its read callback, a bound method of itself, after it closed
    (CPython's `_SelectorSocketTransport`, with its socket and extra info)."""
    if getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[attr-defined]
