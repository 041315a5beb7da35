"""`NativeWebSocketAdapter`: the `WebSocketAdapter` of a socket the Rust core owns.

When the server offers the `fraiseql.native` extension (`fraiseql_fastapi.native`), accepting
hands the socket over to the core: from then on the core reads it, writes the frames it queues
for the connection itself (the transport runs no sender), and writes what the protocol sends
after them. What the client sends comes back through one file descriptor per manager that the
event loop watches (`_Hub`), in order, to the adapter of its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from starlette.websockets import WebSocket

from ..native import ADOPT_KEY, NATIVE_EXTENSION
from .adapter import WebSocketAdapter, WebSocketDisconnected

if TYPE_CHECKING:
    from fraiseql_core_rs import PySubscriptionExecutor

    from ..manager import SubscriptionManager

__all__ = ["NativeWebSocketAdapter", "offers_native"]

#: How long `close` waits for the core to have sent the close frame, in seconds.
CLOSE_TIMEOUT: Final = 2.0
#: UTF-8 takes at most 4 bytes a character: the core's limit (bytes) leaves the protocol's
#: (characters) to decide, with its own close code.
_BYTES_PER_CHARACTER: Final = 4


def offers_native(websocket: WebSocket) -> bool:
    """Whether the server can hand this WebSocket over to the core."""
    return NATIVE_EXTENSION in (websocket.scope.get("extensions") or {})


class NativeWebSocketAdapter:
    """A WebSocket that the core serves once accepted (`adopt`); before that, and for a
    refusal without a subprotocol, `framework`: the adapter of the framework's WebSocket."""

    def __init__(
        self, framework: WebSocketAdapter, manager: SubscriptionManager, max_message_size: int
    ) -> None:
        self._framework = framework
        self._executor = manager.executor
        self._hub = _hub_for(manager)
        self._max_message_size = max_message_size
        #: The socket's descriptor between the handover and `adopt` (then the core's).
        self._fd: int | None = None
        self._connection_id: str | None = None
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._closed: asyncio.Event = asyncio.Event()
        self._closing = False
        self._python = False  # accepted without a handover (to refuse with 4406)

    # ----- WebSocketAdapter ---------------------------------------------------------------

    @property
    def subprotocols(self) -> Sequence[str]:
        return self._framework.subprotocols

    @property
    def request(self) -> Any:
        return self._framework.request

    @property
    def is_connected(self) -> bool:
        if self._python:
            return self._framework.is_connected
        return self._connection_id is not None and not self._closed.is_set()

    async def accept(self, subprotocol: str | None) -> None:
        if subprotocol is None:  # no protocol to serve: only to close with 4406
            self._python = True
            await self._framework.accept(None)
            return
        websocket: WebSocket = self._framework.request
        await websocket.send(
            {"type": "websocket.accept", "subprotocol": subprotocol, ADOPT_KEY: self._handed_over}
        )

    def adopt(self, connection_id: str) -> None:
        """Gives the socket to the core, as the connection `connection_id` (open already)."""
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError("the server did not hand the socket over")
        self._connection_id = connection_id
        self._hub.register(connection_id, self)
        try:
            self._executor.adopt_socket(
                connection_id, fd, max_message_size=self._max_message_size * _BYTES_PER_CHARACTER
            )
        except BaseException:
            self._hub.unregister(connection_id)
            self._connection_id = None
            raise

    async def receive_text(self) -> str:
        kind, value = await self._inbox.get()
        if kind == "text":
            return str(value)
        if kind == "binary":
            raise TypeError("binary WebSocket message")
        self._inbox.put_nowait((kind, value))  # for whoever reads next
        raise WebSocketDisconnected(int(value))

    async def send_text(self, text: str) -> None:
        if self._python:
            await self._framework.send_text(text)
        elif self._connection_id is not None and not self._closed.is_set():
            with contextlib.suppress(KeyError):  # removed meanwhile: the client is gone
                self._executor.socket_send(self._connection_id, text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._python:
            await self._framework.close(code, reason)
            return
        connection_id = self._connection_id
        if connection_id is None or self._closing:
            return
        self._closing = True
        with contextlib.suppress(KeyError):
            self._executor.socket_close(connection_id, code, reason)
        # Until the core has sent the close frame (the connection is removed right after).
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closed.wait(), CLOSE_TIMEOUT)

    # ----- from the server and the core -------------------------------------------------------

    def _handed_over(self, fd: int) -> None:
        self._fd = fd

    def deliver(self, kind: str, value: Any) -> None:
        """What the core received for this connection: ("text", str), ("binary", None) or
        ("closed", code), the last one once."""
        if kind == "closed":
            self._closed.set()
            if self._connection_id is not None:
                self._hub.unregister(self._connection_id)
        self._inbox.put_nowait((kind, value))

    def release(self) -> None:
        """Forgets the socket on our side: a descriptor never adopted is closed."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._connection_id is not None:
            self._hub.unregister(self._connection_id)


class _Hub:
    """The adapters of one manager's native sockets, fed from the core's event descriptor,
    which the event loop watches while any is open."""

    def __init__(self, executor: PySubscriptionExecutor) -> None:
        self._executor = executor
        self._adapters: dict[str, NativeWebSocketAdapter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def register(self, connection_id: str, adapter: NativeWebSocketAdapter) -> None:
        if not self._adapters:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._executor.socket_events_fd, self._dispatch)
        self._adapters[connection_id] = adapter

    def unregister(self, connection_id: str) -> None:
        if self._adapters.pop(connection_id, None) is not None and not self._adapters:
            assert self._loop is not None
            self._loop.remove_reader(self._executor.socket_events_fd)

    def _dispatch(self) -> None:
        for connection_id, kind, value in self._executor.take_socket_events():
            adapter = self._adapters.get(connection_id)
            if adapter is not None:
                adapter.deliver(kind, value)


_hubs: weakref.WeakKeyDictionary[SubscriptionManager, _Hub] = weakref.WeakKeyDictionary()


def _hub_for(manager: SubscriptionManager) -> _Hub:
    hub = _hubs.get(manager)
    if hub is None:
        hub = _hubs[manager] = _Hub(manager.executor)
    return hub
