"""The graphql-transport-ws protocol, server side, as one state machine over a `Connection` and
a `ProtocolSocket`.

Follows the reference server (graphql-ws `src/server.ts`): `connection_init` within a timeout
(4408), one init only (4429), `on_connect` may refuse (4403), nothing before the ack (4401), one
live operation per id (4409), invalid messages (4400), `ping`/`pong` both ways with server pings
and a pong deadline, `complete` both ways, `error` ending an operation. The core's frames for the
connection are sent by the transport; this module sends only control messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from enum import Enum, IntEnum
from typing import Any, ClassVar, Final

from graphql import GraphQLError

from fraiseql_core_rs import PyGraphQLMessage

from ..connection import Connection
from ..schema import PreparedOperation
from .common import (
    OnConnect,
    Operations,
    ProtocolOptions,
    ProtocolSocket,
    Timer,
    authenticate,
    dumps,
    too_many_operations,
)

__all__ = ["GRAPHQL_TRANSPORT_WS", "CloseCode", "GraphQLTransportWSProtocol", "MessageType"]

#: The WebSocket subprotocol, and the core's envelope for its frames.
GRAPHQL_TRANSPORT_WS: Final = "graphql-transport-ws"


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


_PING: Final = dumps({"type": MessageType.PING.value})
_PONG: Final = dumps({"type": MessageType.PONG.value})


class GraphQLTransportWSProtocol:
    """Serves one connection with graphql-transport-ws. The transport calls `opened` once,
    `received` for each text message, `shutdown` on server shutdown and `closed` once the
    connection has closed, from either side."""

    subprotocol: ClassVar[str] = GRAPHQL_TRANSPORT_WS
    envelope: ClassVar[str] = GRAPHQL_TRANSPORT_WS

    def __init__(
        self,
        connection: Connection,
        socket: ProtocolSocket,
        *,
        on_connect: OnConnect | None = None,
        options: ProtocolOptions | None = None,
    ) -> None:
        self.connection = connection
        self.socket = socket
        self.on_connect = on_connect
        self.options = options or ProtocolOptions()
        self.operations = Operations(connection, self.options.max_subscriptions)
        self._init_received = False
        self._acknowledged = False
        self._awaiting_pong = False
        #: The pending timer: the init deadline, then the next ping or the pong deadline.
        self._timer: Timer | None = None

    # ----- lifecycle ------------------------------------------------------------------------

    async def opened(self) -> None:
        """The socket is open: the client has `connection_init_timeout` to be acknowledged."""
        self._timer = self.socket.call_later(
            self.options.connection_init_timeout, self._init_timeout
        )

    async def shutdown(self) -> None:
        """Server shutdown: every live operation gets `complete`, then the socket closes 1001."""
        for op_id in self.operations.forget_all():
            await self.socket.send(_complete(op_id))
        await self.socket.close(CloseCode.GOING_AWAY, "Server shutting down")

    def closed(self) -> None:
        """The connection closed: ends every operation and timer."""
        self.operations.forget_all()
        if self._timer is not None:
            self._timer.cancel()

    async def _init_timeout(self) -> None:
        if not self._acknowledged:
            await self.socket.close(
                CloseCode.CONNECTION_INITIALISATION_TIMEOUT, "Connection initialisation timeout"
            )

    def _schedule_ping(self) -> None:
        interval = self.options.ping_interval
        if interval:
            self._timer = self.socket.call_later(interval, self._ping)

    async def _ping(self) -> None:
        self._awaiting_pong = True
        self._timer = self.socket.call_later(self.options.pong_timeout, self._pong_due)
        await self.socket.send(_PING)

    async def _pong_due(self) -> None:
        if self._awaiting_pong:
            await self.socket.close(CloseCode.PONG_TIMEOUT, "Pong not received in time")

    def _on_pong(self) -> None:
        if self._awaiting_pong:
            self._awaiting_pong = False
            if self._timer is not None:
                self._timer.cancel()
            self._schedule_ping()

    # ----- messages ---------------------------------------------------------------------------

    async def received(self, text: str) -> None:
        """Handles one text message from the client."""
        if len(text) > self.options.max_message_size:
            await self.socket.close(CloseCode.MESSAGE_TOO_BIG, "Message too big")
            return
        try:
            message = PyGraphQLMessage.parse(text)
        except ValueError as error:
            await self.socket.close(CloseCode.BAD_REQUEST, str(error))
            return
        kind = message.type
        if kind == "connection_init":
            await self._on_connection_init(message.payload)
        elif kind == "ping":
            await self.socket.send(_PONG)
        elif kind == "pong":
            self._on_pong()
        elif kind == "subscribe":
            await self._on_subscribe(message)
        elif kind == "complete":
            # No frame of the operation may be sent once its complete is handled.
            async with self.socket.exclusive():
                self.operations.forget(message.id or "")
        else:
            await self.socket.close(
                CloseCode.BAD_REQUEST, f'Unexpected message of type "{kind}" received'
            )

    async def received_binary(self) -> None:
        """The client sent a binary message, which the protocol does not have."""
        await self.socket.close(CloseCode.BAD_REQUEST, "Binary messages are not supported")

    async def _on_connection_init(self, payload: Any) -> None:
        if self._init_received:
            await self.socket.close(
                CloseCode.TOO_MANY_INITIALISATION_REQUESTS, "Too many initialisation requests"
            )
            return
        self._init_received = True
        context = await authenticate(
            self.on_connect, payload if isinstance(payload, Mapping) else None, self.socket.request
        )
        if context is None:
            await self.socket.close(CloseCode.FORBIDDEN, "Forbidden")
            return
        self.connection.context = context
        ack: dict[str, Any] = {"type": MessageType.CONNECTION_ACK.value}
        if context.ack_payload is not None:
            ack["payload"] = dict(context.ack_payload)
        self._acknowledged = True
        await self.socket.send(dumps(ack))
        self._schedule_ping()

    async def _on_subscribe(self, message: PyGraphQLMessage) -> None:
        op_id = message.id or ""
        if not self._acknowledged:
            await self.socket.close(CloseCode.UNAUTHORIZED, "Unauthorized")
            return
        if self.operations.is_live(op_id):
            await self.socket.close(
                CloseCode.SUBSCRIBER_ALREADY_EXISTS, f"Subscriber for {op_id} already exists"
            )
            return
        if self.operations.at_limit():
            await self._send_errors(op_id, [too_many_operations(self.operations.limit)])
            return
        payload = message.subscribe_payload()
        prepared = self.connection.prepare(
            payload.query, payload.operation_name, payload.variables or None
        )
        if isinstance(prepared, list):
            await self._send_errors(op_id, prepared)
            return
        if prepared.kind == "subscription":
            errors = self.connection.subscribe(op_id, prepared)
            if errors:
                await self._send_errors(op_id, errors)
            else:
                self.operations.add_subscription(op_id)
            return
        task = asyncio.create_task(self._run_query(op_id, prepared))
        self.operations.add_query(op_id, task)

    async def _run_query(self, op_id: str, prepared: PreparedOperation) -> None:
        try:
            result = await self.connection.execute(prepared)
        finally:
            # Done (or failed): no longer a live operation, unless it was already forgotten.
            ours = self.operations.query_finished(op_id, asyncio.current_task())
        if not ours:
            return
        await self.socket.send(
            dumps({"id": op_id, "type": MessageType.NEXT.value, "payload": result})
        )
        await self.socket.send(_complete(op_id))

    async def _send_errors(self, op_id: str, errors: list[GraphQLError]) -> None:
        payload = self.connection.errors.format_all(errors)
        await self.socket.send(
            dumps({"id": op_id, "type": MessageType.ERROR.value, "payload": payload})
        )


def _complete(op_id: str) -> str:
    return dumps({"id": op_id, "type": MessageType.COMPLETE.value})
