"""The graphql-transport-ws protocol, server side, as one state machine over a `WebSocketAdapter`.

Follows the reference server (graphql-ws `src/server.ts`): subprotocol negotiation (4406),
`connection_init` within a timeout (4408), one init only (4429), `on_connect` may refuse (4403),
nothing before the ack (4401), one live operation per id (4409), invalid messages (4400),
`ping`/`pong` both ways with server pings and a pong deadline, `complete` both ways, `error`
ending an operation. Frames produced by the Rust core are sent by one sender task per connection,
woken by the core when the connection has frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError

from fraiseql_core_rs import PyGraphQLMessage

from ..context import ConnectionContext
from .adapter import WebSocketAdapter, WebSocketDisconnected

if TYPE_CHECKING:
    from ..manager import SubscriptionManager

logger = logging.getLogger("fraiseql_fastapi")

GRAPHQL_TRANSPORT_WS = "graphql-transport-ws"


class CloseCode(IntEnum):
    """Close codes of graphql-transport-ws (and the WebSocket ones we use)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    #: Not sent: what a connection that ended without a close frame is counted as.
    ABNORMAL_CLOSURE = 1006
    MESSAGE_TOO_BIG = 1009
    INTERNAL_SERVER_ERROR = 4500
    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    SUBPROTOCOL_NOT_ACCEPTABLE = 4406
    CONNECTION_INITIALISATION_TIMEOUT = 4408
    SUBSCRIBER_ALREADY_EXISTS = 4409
    TOO_MANY_INITIALISATION_REQUESTS = 4429
    #: The client did not answer a server ping in time (not in the protocol; 4xxx is ours).
    PONG_TIMEOUT = 4504


class MessageType(str, Enum):
    """Message types of graphql-transport-ws."""

    CONNECTION_INIT = "connection_init"
    CONNECTION_ACK = "connection_ack"
    PING = "ping"
    PONG = "pong"
    SUBSCRIBE = "subscribe"
    NEXT = "next"
    ERROR = "error"
    COMPLETE = "complete"


#: `on_connect(payload, request)` returns who the connection acts for: a `ConnectionContext`,
#: a dict with its keys, True/None (anonymous) or False (refused, 4403); it may be async and
#: may raise PermissionError to refuse.
OnConnect = Callable[[Mapping[str, Any] | None, Any], Any]


@dataclass(frozen=True)
class ProtocolOptions:
    """Limits and timers of a connection (seconds; None disables a timer)."""

    connection_init_timeout: float = 3.0
    ping_interval: float | None = 15.0
    pong_timeout: float = 10.0
    max_subscriptions: int = 100
    max_message_size: int = 1 << 20


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


class GraphQLTransportWSHandler:
    """Serves one WebSocket connection with the graphql-transport-ws protocol."""

    def __init__(
        self,
        manager: SubscriptionManager,
        websocket: WebSocketAdapter,
        *,
        on_connect: OnConnect | None = None,
        options: ProtocolOptions | None = None,
    ) -> None:
        self.manager = manager
        self.websocket = websocket
        self.on_connect = on_connect
        self.options = options or ProtocolOptions()
        self.connection_id = ""
        self.context = ConnectionContext()
        self.frames_ready = FramesReady()
        self._init_received = False
        self._acknowledged = False
        self._closed = False
        self._pong = asyncio.Event()
        self._send_lock = asyncio.Lock()
        #: Operations by id: subscriptions (None) and running queries (their task). A query
        #: leaves when it is done; a subscription the core ended (error, lag) stays until its id
        #: is looked up, the client completes it, or enough of them are pruned (`_at_limit`).
        self._operations: dict[str, asyncio.Task[None] | None] = {}
        #: How many entries of `_operations` are queries.
        self._queries = 0
        self._tasks: list[asyncio.Task[None]] = []

    # ----- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Handshake, then serve messages until the connection closes; always cleans up."""
        if GRAPHQL_TRANSPORT_WS not in self.websocket.subprotocols:
            await self.websocket.accept(None)
            await self.close(CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE, "Subprotocol not acceptable")
            return
        await self.websocket.accept(GRAPHQL_TRANSPORT_WS)
        self.connection_id = self.manager.open_connection(self)
        try:
            self._tasks.append(asyncio.create_task(self._send_frames()))
            self._tasks.append(asyncio.create_task(self._init_timeout()))
            while not self._closed:
                try:
                    text = await self.websocket.receive_text()
                except WebSocketDisconnected as gone:
                    self._mark_closed(gone.code)
                    break
                except TypeError:
                    await self.close(CloseCode.BAD_REQUEST, "Binary messages are not supported")
                    break
                await self._handle(text)
        except Exception:
            logger.exception("graphql-transport-ws connection failed")
            await self.close(CloseCode.INTERNAL_SERVER_ERROR, "Internal server error")
        finally:
            await self._cleanup()

    async def shutdown(self) -> None:
        """Server shutdown: every live operation gets `complete`, then the socket closes 1001."""
        for op_id in list(self._operations):
            self._forget(op_id)
            with contextlib.suppress(Exception):
                await self._send_json({"id": op_id, "type": MessageType.COMPLETE.value})
        await self.close(CloseCode.GOING_AWAY, "Server shutting down")

    async def close(self, code: int, reason: str) -> None:
        """Closes the socket once (the reason is cut to the 123 bytes a close frame allows)."""
        if not self._mark_closed(code):
            return
        encoded = reason.encode()[:123].decode(errors="ignore")
        with contextlib.suppress(Exception):
            await self.websocket.close(int(code), encoded)

    def _mark_closed(self, code: int) -> bool:
        """Marks the connection closed with `code` and counts it; False if it already was."""
        if self._closed:
            return False
        self._closed = True
        self.manager.connection_closed(code)
        return True

    async def _cleanup(self) -> None:
        self._mark_closed(CloseCode.ABNORMAL_CLOSURE)  # when neither side closed (cancelled)
        for op_id in list(self._operations):
            self._forget(op_id)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.connection_id:
            self.manager.close_connection(self.connection_id)

    # ----- timers and the sender ---------------------------------------------------------------

    async def _init_timeout(self) -> None:
        await asyncio.sleep(self.options.connection_init_timeout)
        if not self._acknowledged:
            await self.close(
                CloseCode.CONNECTION_INITIALISATION_TIMEOUT, "Connection initialisation timeout"
            )

    async def _keepalive(self, interval: float) -> None:
        while not self._closed:
            await asyncio.sleep(interval)
            self._pong.clear()
            await self._send_json({"type": MessageType.PING.value})
            try:
                await asyncio.wait_for(self._pong.wait(), self.options.pong_timeout)
            except asyncio.TimeoutError:
                await self.close(CloseCode.PONG_TIMEOUT, "Pong not received in time")
                return

    async def _send_frames(self) -> None:
        """Sends what the core queued for this connection, each time it says there is some."""
        # The hot path: one pass per wake-up, usually with one frame; look-ups hoisted.
        ready = self.frames_ready
        drain = self.manager.drain
        send_text = self.websocket.send_text
        lock = self._send_lock
        connection_id = self.connection_id
        while True:
            await ready.wait()
            ready.clear()
            await lock.acquire()
            try:
                # Drained under the lock, which a client's `complete` takes too: frames drained
                # before it is handled are sent before it is, none after.
                for text in drain(connection_id):
                    if self._closed:
                        return
                    await send_text(text)
            finally:
                lock.release()

    async def _send(self, text: str) -> None:
        async with self._send_lock:
            if not self._closed:
                await self.websocket.send_text(text)

    async def _send_json(self, message: Mapping[str, Any]) -> None:
        await self._send(json.dumps(message, separators=(",", ":")))

    # ----- messages ---------------------------------------------------------------------------

    async def _handle(self, text: str) -> None:
        if len(text) > self.options.max_message_size:
            await self.close(CloseCode.MESSAGE_TOO_BIG, "Message too big")
            return
        try:
            message = PyGraphQLMessage.parse(text)
        except ValueError as error:
            await self.close(CloseCode.BAD_REQUEST, str(error))
            return
        kind = message.type
        if kind == "connection_init":
            await self._on_connection_init(message.payload)
        elif kind == "ping":
            await self._send_json({"type": MessageType.PONG.value})
        elif kind == "pong":
            self._pong.set()
        elif kind == "subscribe":
            await self._on_subscribe(message)
        elif kind == "complete":
            async with self._send_lock:
                self._forget(message.id or "")
        else:
            await self.close(CloseCode.BAD_REQUEST, f'Unexpected message of type "{kind}" received')

    async def _on_connection_init(self, payload: Any) -> None:
        if self._init_received:
            await self.close(
                CloseCode.TOO_MANY_INITIALISATION_REQUESTS, "Too many initialisation requests"
            )
            return
        self._init_received = True
        try:
            verdict = await _maybe_await(
                self.on_connect(payload, self.websocket.request) if self.on_connect else True
            )
        except PermissionError:
            verdict = False
        if verdict is False:
            await self.close(CloseCode.FORBIDDEN, "Forbidden")
            return
        self.context = ConnectionContext.from_value(verdict)
        ack: dict[str, Any] = {"type": MessageType.CONNECTION_ACK.value}
        if self.context.ack_payload is not None:
            ack["payload"] = dict(self.context.ack_payload)
        self._acknowledged = True
        await self._send_json(ack)
        if self.options.ping_interval:
            self._tasks.append(asyncio.create_task(self._keepalive(self.options.ping_interval)))

    async def _on_subscribe(self, message: PyGraphQLMessage) -> None:
        op_id = message.id or ""
        if not self._acknowledged:
            await self.close(CloseCode.UNAUTHORIZED, "Unauthorized")
            return
        if self._is_live(op_id):
            await self.close(
                CloseCode.SUBSCRIBER_ALREADY_EXISTS, f"Subscriber for {op_id} already exists"
            )
            return
        if self._at_limit():
            limit = self.options.max_subscriptions
            await self._send_errors(
                op_id,
                [
                    GraphQLError(
                        f"Too many operations on this connection (at most {limit})",
                        extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
                    )
                ],
            )
            return
        payload = message.subscribe_payload()
        prepared = self.manager.prepare(
            payload.query, payload.operation_name, payload.variables or None
        )
        if isinstance(prepared, list):
            await self._send_errors(op_id, prepared)
            return
        if prepared.kind == "subscription":
            errors = self.manager.subscribe(self.connection_id, op_id, prepared, self.context)
            if errors:
                await self._send_errors(op_id, errors)
            else:
                self._operations[op_id] = None
            return
        task = asyncio.create_task(self._run_query(op_id, prepared))
        self._operations[op_id] = task
        self._queries += 1

    async def _run_query(self, op_id: str, prepared: Any) -> None:
        try:
            result = await self.manager.execute(prepared, self.context)
        finally:
            # Done (or failed): no longer a live operation, unless `_forget` already took it.
            ours = self._operations.get(op_id) is asyncio.current_task()
            if ours:
                self._remove(op_id)
        if not ours:
            return
        await self._send_json({"id": op_id, "type": MessageType.NEXT.value, "payload": result})
        await self._send_json({"id": op_id, "type": MessageType.COMPLETE.value})

    async def _send_errors(self, op_id: str, errors: list[GraphQLError]) -> None:
        payload = self.manager.errors.format_all(errors)
        await self._send_json({"id": op_id, "type": MessageType.ERROR.value, "payload": payload})

    def _is_live(self, op_id: str) -> bool:
        """A subscription the core ended (error, lag) is no longer live: its id is free."""
        if op_id not in self._operations:
            return False
        task = self._operations[op_id]
        if task is None:
            live = self.manager.is_subscribed(self.connection_id, op_id)
        else:
            live = not task.done()
        if not live:
            self._remove(op_id)
        return live

    def _at_limit(self) -> bool:
        """True when `max_subscriptions` operations are live, in constant time (amortised):
        the core counts the connection's live subscriptions, and every query in
        `_operations` is running. Entries of subscriptions the core ended are pruned once they
        are as many as the limit, which keeps `_operations` under twice the limit."""
        limit = self.options.max_subscriptions
        live = self.manager.live_subscriptions(self.connection_id) + self._queries
        if len(self._operations) - live >= limit:
            for op_id in list(self._operations):
                self._is_live(op_id)
        return live >= limit

    def _remove(self, op_id: str) -> asyncio.Task[None] | None:
        task = self._operations.pop(op_id)
        if task is not None:
            self._queries -= 1
        return task

    def _forget(self, op_id: str) -> None:
        """Ends an operation on our side (client `complete`, shutdown, disconnect)."""
        if op_id not in self._operations:
            return
        task = self._remove(op_id)
        if task is None:
            self.manager.complete(self.connection_id, op_id)
        else:
            task.cancel()


async def _maybe_await(value: Awaitable[Any] | Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
