"""`NativeWebSocketAdapter`: the `WebSocketAdapter` of a socket the Rust core owns.

When the server offers the `fraiseql.native` extension (`fraiseql_fastapi.native`), accepting
hands the socket over to the core: from then on the core reads it, writes the frames it queues
for the connection itself (the transport runs no sender), and writes what the protocol sends
after them. What the client sends comes back through one file descriptor per manager that the
event loop watches (`_Hub`), in order, to the callback of its connection (`adopt`): no task
waits on an idle connection, so it costs only its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

from starlette.websockets import WebSocket

from ..native import ADOPT_KEY, NATIVE_EXTENSION
from .adapter import WebSocketAdapter

if TYPE_CHECKING:
    from fraiseql_core_rs import PySubscriptionExecutor

    from ..manager import SubscriptionManager

__all__ = ["NativeWebSocketAdapter", "SocketEventHandler", "offers_native"]

#: How long `close` waits for the core to have sent the close frame, in seconds.
CLOSE_TIMEOUT: Final = 2.0
#: UTF-8 takes at most 4 bytes a character: the core's limit (bytes) leaves the protocol's
#: (characters) to decide, with its own close code.
_BYTES_PER_CHARACTER: Final = 4


class SocketEventHandler(Protocol):
    """What gets the core's events for an adopted socket (an object, not a callable: an idle
    connection keeps no bound method for it)."""

    def socket_event(self, kind: str, value: Any) -> None:
        """What the core received: ("text", str), ("binary", None) or ("closed", code), the
        last one once; in order, on the event loop."""
        ...


def offers_native(websocket: WebSocket) -> bool:
    """Whether the server can hand this WebSocket over to the core."""
    return NATIVE_EXTENSION in (websocket.scope.get("extensions") or {})


def _keep_alive(scope: Mapping[str, Any]) -> tuple[float | None, float]:
    """`adopt_socket`'s ping interval and timeout from what the server's extension says (no
    interval: no pings; no timeout: the interval)."""
    offered = (scope.get("extensions") or {}).get(NATIVE_EXTENSION) or {}
    interval = offered.get("ping_interval")
    if not interval:
        return None, 20.0
    return float(interval), float(offered.get("ping_timeout") or interval)


async def _served_by_the_core(*_: Any) -> NoReturn:
    raise RuntimeError("this WebSocket is served by the core")


class NativeWebSocketAdapter:
    """A WebSocket that the core serves once accepted (`adopt`); before that, and for a
    refusal without a subprotocol, `framework`: the adapter of the framework's WebSocket."""

    __slots__ = (
        "_closed",
        "_closing",
        "_connection_id",
        "_executor",
        "_fd",
        "_framework",
        "_handler",
        "_hub",
        "_max_message_size",
        "_python",
        "_request",
        "_waiter",
    )

    def __init__(
        self, framework: WebSocketAdapter, manager: SubscriptionManager, max_message_size: int
    ) -> None:
        self._framework: WebSocketAdapter | None = framework
        self._request: Any = framework.request
        self._executor = manager.executor
        self._hub = _hub_for(manager)
        self._max_message_size = max_message_size
        #: The socket's descriptor between the handover and `adopt` (then the core's).
        self._fd: int | None = None
        self._connection_id: str | None = None
        self._closed = False
        self._closing = False
        #: What `close` waits on until the "closed" event.
        self._waiter: asyncio.Future[None] | None = None
        self._python = False  # accepted without a handover (to refuse with 4406)
        self._handler: SocketEventHandler | None = None

    # ----- WebSocketAdapter ---------------------------------------------------------------

    @property
    def subprotocols(self) -> Sequence[str]:
        return list(self._request.scope.get("subprotocols") or [])

    @property
    def request(self) -> Any:
        return self._request

    @property
    def is_connected(self) -> bool:
        if self._python:
            return self._framework is not None and self._framework.is_connected
        return self._connection_id is not None and not self._closed

    async def accept(self, subprotocol: str | None) -> None:
        framework = self._framework
        assert framework is not None, "accepted twice"
        if subprotocol is None:  # no protocol to serve: only to close with 4406
            self._python = True
            await framework.accept(None)
            return
        websocket: WebSocket = framework.request
        await websocket.send(
            {"type": "websocket.accept", "subprotocol": subprotocol, ADOPT_KEY: self._handed_over}
        )
        # The server's WebSocket (and its protocol object) is done with: what `on_connect`
        # sees from now on is the same request, with no I/O of its own, over its scope less
        # what a framework keeps there for the handler's run (FastAPI's exit stacks).
        self._framework = None
        scope = {k: v for k, v in websocket.scope.items() if not k.startswith("fastapi_")}
        self._request = WebSocket(scope, _served_by_the_core, _served_by_the_core)

    def release_request(self) -> None:
        """Forgets the request (once `on_connect` has decided from it): an idle connection
        keeps no scope, headers or request object."""
        self._request = None

    def adopt(self, connection_id: str, handler: SocketEventHandler) -> None:
        """Gives the socket to the core, as the connection `connection_id` (open already);
        `handler` gets what the core receives for it, in order, on the event loop."""
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError("the server did not hand the socket over")
        self._connection_id = connection_id
        self._handler = handler
        self._hub.register(connection_id, self)
        # The server's keep-alive pings, which the core sends once it owns the socket.
        ping_interval, ping_timeout = _keep_alive(self._request.scope)
        try:
            self._executor.adopt_socket(
                connection_id,
                fd,
                max_message_size=self._max_message_size * _BYTES_PER_CHARACTER,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
            )
        except BaseException:
            self._hub.unregister(connection_id)
            self._connection_id = None
            raise

    async def receive_text(self) -> str:
        if self._python and self._framework is not None:
            return await self._framework.receive_text()
        raise RuntimeError("the core delivers what this WebSocket receives (adopt's handler)")

    async def send_text(self, text: str) -> None:
        if self._python:
            if self._framework is not None:
                await self._framework.send_text(text)
        elif self._connection_id is not None and not self._closed:
            with contextlib.suppress(KeyError):  # removed meanwhile: the client is gone
                self._executor.socket_send(self._connection_id, text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._python:
            if self._framework is not None:
                await self._framework.close(code, reason)
            return
        connection_id = self._connection_id
        if connection_id is None or self._closing:
            return
        self._closing = True
        with contextlib.suppress(KeyError):
            self._executor.socket_close(connection_id, code, reason)
        if self._closed:
            return
        # Until the core has sent the close frame (the connection is removed right after).
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(waiter, CLOSE_TIMEOUT)

    # ----- from the server and the core -------------------------------------------------------

    def _handed_over(self, fd: int) -> None:
        self._fd = fd

    def _event(self, kind: str, value: Any) -> None:
        handler = self._handler
        if handler is not None:
            handler.socket_event(kind, value)

    def _ended(self) -> None:
        """The core reported the socket closed."""
        self._closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def release(self) -> None:
        """Forgets the socket on our side: a descriptor never adopted is closed."""
        self._handler = None  # it holds this adapter: no cycle left for the GC
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._connection_id is not None:
            self._hub.unregister(self._connection_id)


class _Hub:
    """The adopted sockets of one manager, fed from the core's event descriptor, which the
    event loop watches while any is open."""

    def __init__(self, executor: PySubscriptionExecutor) -> None:
        self._executor = executor
        self._sockets: dict[str, NativeWebSocketAdapter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def register(self, connection_id: str, adapter: NativeWebSocketAdapter) -> None:
        if not self._sockets:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._executor.socket_events_fd, self._dispatch)
        self._sockets[connection_id] = adapter

    def unregister(self, connection_id: str) -> None:
        if self._sockets.pop(connection_id, None) is not None and not self._sockets:
            assert self._loop is not None
            self._loop.remove_reader(self._executor.socket_events_fd)

    def _dispatch(self) -> None:
        for connection_id, kind, value in self._executor.take_socket_events():
            adapter = self._sockets.get(connection_id)
            if adapter is None:
                continue
            if kind == "closed":
                adapter._ended()
                self.unregister(connection_id)
            adapter._event(kind, value)


_hubs: weakref.WeakKeyDictionary[SubscriptionManager, _Hub] = weakref.WeakKeyDictionary()


def _hub_for(manager: SubscriptionManager) -> _Hub:
    hub = _hubs.get(manager)
    if hub is None:
        hub = _hubs[manager] = _Hub(manager.executor)
    return hub
