"""The WebSocket transport: serves one `WebSocketAdapter` with the protocol its client asked
for (by subprotocol), doing the I/O the protocol asks for: reading messages, sending the
frames the core queues (one sender task per connection, woken by the core) and the protocol's
own messages, its timers, and cleaning up however the connection ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from ..connection import Connection
from ..protocols import WebSocketProtocol, websocket_protocol
from ..protocols.common import OnConnect, OnRefresh, ProtocolOptions, Timer
from ..protocols.websocket import CloseCode
from .adapter import WebSocketAdapter, WebSocketDisconnected
from .native import NativeWebSocketAdapter

if TYPE_CHECKING:
    from ..manager import SubscriptionManager

__all__ = ["FramesReady", "WebSocketTransport"]

logger = logging.getLogger("fraiseql_fastapi")

#: `exclusive` on a socket the core owns: it drains the frames itself, under the lock of the
#: registry that `forget` takes, so nothing of an operation follows its removal anyway.
_NOTHING_TO_HOLD_OFF: AbstractAsyncContextManager[None] = contextlib.nullcontext()


class FramesReady:
    """The wake-up of a connection's sender: like `asyncio.Event` with a single waiter, which
    is all the sender needs, and cheaper, since it is set and waited for once per message sent
    in the usual case of one frame per wake-up. `set` is called by the core, on the loop."""

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        if self._flag:
            return
        self._flag = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> None:
        """Returns once set (at once if it is); one task at a time may wait."""
        if self._flag:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None


class WebSocketTransport:
    """Serves one WebSocket connection: `await WebSocketTransport(manager, adapter).run()`.

    The subprotocol picks the protocol: `graphql-transport-ws` or the legacy `graphql-ws`
    (each can be turned off in `ProtocolOptions`); a client offering neither gets 4406.
    `on_connect(payload, request)` authenticates the connection (see `ProtocolOptions` and
    `fraiseql_fastapi.protocols.common.OnConnect`); `on_refresh(payload, context)` renews its
    credentials in band (graphql-transport-ws `ping` payloads; see `OnRefresh`);
    `request_context` is what the route's `context_getter` returned for the handshake."""

    def __init__(
        self,
        manager: SubscriptionManager,
        websocket: WebSocketAdapter,
        *,
        on_connect: OnConnect | None = None,
        on_refresh: OnRefresh | None = None,
        options: ProtocolOptions | None = None,
        request_context: Any = None,
    ) -> None:
        self.manager = manager
        self.websocket = websocket
        self.on_connect = on_connect
        self.on_refresh = on_refresh
        self.options = options or ProtocolOptions()
        self.request_context = request_context
        #: The adapter when the core owns the socket (and writes the frames itself).
        self._native = websocket if isinstance(websocket, NativeWebSocketAdapter) else None
        #: Wakes the sender (a socket the core owns has none).
        self.frames_ready = FramesReady() if self._native is None else None
        self.connection: Connection | None = None
        self.protocol: WebSocketProtocol | None = None
        #: Orders protocol messages and frames on a socket Python writes; on one the core
        #: owns, sending is synchronous (queued after the frames in the core): no lock.
        self._send_lock = asyncio.Lock() if self._native is None else None
        # Lists, not sets: they hold a few items, and an idle connection keeps them.
        self._tasks: list[asyncio.Task[Any]] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._closed = False
        self._cleaned_up = False
        #: A socket the core owns: what it received and not yet handled, and the task handling
        #: it (both only while there is some), and the end of the connection for `run`.
        self._inbox: collections.deque[tuple[str, Any]] | None = None
        self._handler: asyncio.Task[None] | None = None
        self._ended: asyncio.Future[None] | None = None

    # ----- the ProtocolSocket of the connection's protocol ----------------------------------------

    @property
    def request(self) -> Any:
        return self.websocket.request

    def release_request(self) -> None:
        if self._native is not None:
            self._native.release_request()

    async def send(self, text: str) -> None:
        """Sends a protocol message; dropped if the client has gone meanwhile (as a legacy
        client does right after its `stop`), whose close the reader then receives."""
        async with self.exclusive():
            if self._closed:
                return
            try:
                await self.websocket.send_text(text)
            except Exception:
                if self.websocket.is_connected:
                    raise
                logger.debug("the client left before a message could be sent", exc_info=True)

    async def close(self, code: int, reason: str) -> None:
        """Closes the socket once (the reason is cut to the 123 bytes a close frame allows).
        Nothing more is sent from the start; the connection is released once the close went
        out (a socket the core owns is written by the core until then)."""
        if self._closed:
            return
        self._closed = True
        encoded = reason.encode()[:123].decode(errors="ignore")
        try:
            await self.websocket.close(int(code), encoded)
        except Exception:  # the client may be gone already
            logger.debug("closing a WebSocket failed", exc_info=True)
        finally:
            self._release(code)

    def call_later(self, delay: float, callback: Callable[[], Awaitable[None]]) -> Timer:
        loop = asyncio.get_running_loop()
        # A bound method and its argument, not a closure: every idle connection keeps one.
        handle = loop.call_later(delay, self._fire, callback)
        self._prune_timers(loop)
        self._timers.append(handle)
        return handle

    def _fire(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._prune_timers(asyncio.get_running_loop())
        if not self._closed:
            self._spawn(_guarded(self, callback))

    def _prune_timers(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forgets the timers that were cancelled or are due (those run, or are about to and
        find the connection closed)."""
        now = loop.time()
        self._timers = [h for h in self._timers if not h.cancelled() and h.when() > now]

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        return self._send_lock or _NOTHING_TO_HOLD_OFF

    # ----- lifecycle ------------------------------------------------------------------------

    async def run(self, *, detach: bool = False) -> None:
        """Handshake, then serve messages until the connection closes; always cleans up.

        On a socket the core owns (`NativeWebSocketAdapter`), what the client sends arrives
        as events from the core; with `detach`, `run` returns once the socket is handed over
        and those events alone drive the connection (its handler and what it holds, such as
        the server's request objects, are freed: an idle connection costs only its state)."""
        protocol_class = websocket_protocol(self.websocket.subprotocols, self.options)
        if protocol_class is None:
            await self.websocket.accept(None)
            self._closed = True
            self.manager.connections_closed[CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE] += 1
            await self.websocket.close(
                CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE, "Subprotocol not acceptable"
            )
            return
        native = self._native
        await self.websocket.accept(protocol_class.subprotocol)
        # A socket the core owns gets its frames from the core: no sender here.
        connection = self.connection = self.manager.connect(
            envelope=protocol_class.envelope,
            on_frames=None if self.frames_ready is None else self.frames_ready.set,
        )
        protocol = self.protocol = protocol_class(
            connection,
            self,
            on_connect=self.on_connect,
            on_refresh=self.on_refresh,
            options=self.options,
            request_context=self.request_context,
        )
        connection.on_shutdown = protocol.shutdown
        if native is not None:
            await self._serve_native(native, protocol, connection, detach)
            return
        try:
            self._spawn(self._send_frames(connection))
            await protocol.opened()
            while not self._closed:
                try:
                    text = await self.websocket.receive_text()
                except WebSocketDisconnected as gone:
                    self._mark_closed(gone.code)
                    break
                except TypeError:
                    await protocol.received_binary()
                    continue
                await protocol.received(text)
        except Exception:
            await self._failed(f"{protocol_class.subprotocol} connection")
        finally:
            await self._cleanup(protocol, connection)

    async def _serve_native(
        self,
        native: NativeWebSocketAdapter,
        protocol: WebSocketProtocol,
        connection: Connection,
        detach: bool,
    ) -> None:
        """Hands the socket to the core; returns then (`detach`) or once it has ended."""
        try:
            native.adopt(connection.id, self)
        except ConnectionError:  # the client left between the 101 and the handover
            logger.debug("the client left before the core took its socket", exc_info=True)
            await self._cleanup(protocol, connection)
            return
        try:
            await protocol.opened()
        except Exception:
            await self._failed(f"{protocol.subprotocol} connection")
            await self._cleanup(protocol, connection)
            return
        if detach or self._cleaned_up:
            return
        ended = self._ended = asyncio.get_running_loop().create_future()
        try:
            await asyncio.shield(ended)
        finally:  # cancelled: the connection ends with the handler
            await self._cleanup(protocol, connection)

    def socket_event(self, kind: str, value: Any) -> None:
        """What the core received (see `SocketEventHandler`), handled in order by one task
        that exists only while there is something to handle."""
        if self._inbox is None:
            self._inbox = collections.deque()
        self._inbox.append((kind, value))
        if self._handler is None:
            self._handler = asyncio.get_running_loop().create_task(self._handle_events())

    async def _handle_events(self) -> None:
        protocol, connection = self.protocol, self.connection
        assert protocol is not None and connection is not None
        inbox = self._inbox
        assert inbox is not None
        try:
            while inbox:
                kind, value = inbox.popleft()
                if kind == "closed":
                    self._mark_closed(int(value))
                    await self._cleanup(protocol, connection)
                    return
                if self._closed:
                    continue  # closing: what the client still sends is not read
                try:
                    if kind == "text":
                        await protocol.received(value)
                    else:
                        await protocol.received_binary()
                except Exception:
                    await self._failed(f"{protocol.subprotocol} connection")
        finally:
            self._handler = None
            if not inbox:
                self._inbox = None

    async def _failed(self, what: str) -> None:
        """`what` raised: logged, and the client gets 4500 without the details."""
        logger.exception("%s failed", what)
        await self.close(CloseCode.INTERNAL_SERVER_ERROR, "Internal server error")

    def _mark_closed(self, code: int) -> bool:
        """Marks the connection closed with `code` and counts it; False if it already was."""
        if self._closed:
            return False
        self._closed = True
        self._release(code)
        return True

    def _release(self, code: int) -> None:
        """Forgets the connection in the manager and the core, counting `code`."""
        if self.connection is not None:
            self.connection.close(code)

    async def _cleanup(self, protocol: WebSocketProtocol, connection: Connection) -> None:
        if self._cleaned_up:
            return
        self._cleaned_up = True
        self._mark_closed(CloseCode.ABNORMAL_CLOSURE)  # when neither side closed (cancelled)
        protocol.closed()
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        connection.close(CloseCode.ABNORMAL_CLOSURE)
        if self._native is not None:
            self._native.release()
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.append(task)
        task.add_done_callback(lambda done: _discard(self._tasks, done))

    async def _send_frames(self, connection: Connection) -> None:
        """Sends what the core queued for this connection, each time it says there is some."""
        # The hot path: one pass per wake-up, usually with one frame; look-ups hoisted.
        ready = self.frames_ready
        assert ready is not None
        drain = connection.drain
        send_text = self.websocket.send_text
        lock = self._send_lock
        assert lock is not None
        while True:
            await ready.wait()
            ready.clear()
            await lock.acquire()
            try:
                # Drained under the lock, which a client's `complete` takes too: frames drained
                # before it is handled are sent before it is, none after.
                for text in drain():
                    if self._closed:
                        return
                    await send_text(text)
            finally:
                lock.release()


def _discard(items: list[Any], item: Any) -> None:
    with contextlib.suppress(ValueError):
        items.remove(item)


async def _guarded(transport: WebSocketTransport, callback: Callable[[], Awaitable[None]]) -> None:
    """Runs a timer's callback; a failure closes the connection (4500) instead of vanishing."""
    try:
        await callback()
    except Exception:
        await transport._failed("a protocol timer")
