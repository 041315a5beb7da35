"""The graphql-transport-ws protocol, server side, as one state machine over a `Connection` and
a `ProtocolSocket`.

Follows the reference server (graphql-ws `src/server.ts`): `connection_init` within a timeout
(4408), one init only (4429), `on_connect` may refuse (4403), nothing before the ack (4401), one
live operation per id (4409), invalid messages (4400), `ping`/`pong` both ways with server pings
and a pong deadline, `complete` both ways, `error` ending an operation. Beyond the reference
server: credentials that expire (`expires_at`: 4403 "Token expired") and are renewed in band by
a `ping` whose payload carries new ones (`on_refresh`). The core's frames for the
connection are sent by the transport; this module sends only control messages. What it shares
with the legacy graphql-ws (the handshake, starting operations, shutdown) is in `.websocket`.
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar, Final

from fraiseql_core_rs import PyGraphQLMessage

from .common import dumps
from .websocket import CloseCode, OperationProtocol

__all__ = ["GRAPHQL_TRANSPORT_WS", "CloseCode", "GraphQLTransportWSProtocol", "MessageType"]

#: The WebSocket subprotocol, and the core's envelope for its frames.
GRAPHQL_TRANSPORT_WS: Final = "graphql-transport-ws"


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


class GraphQLTransportWSProtocol(OperationProtocol):
    """Serves one connection with graphql-transport-ws. The transport calls `opened` once,
    `received` for each text message, `shutdown` on server shutdown and `closed` once the
    connection has closed, from either side."""

    subprotocol: ClassVar[str] = GRAPHQL_TRANSPORT_WS
    envelope: ClassVar[str] = GRAPHQL_TRANSPORT_WS
    result_type: ClassVar[str] = MessageType.NEXT.value

    #: A ping was sent and its pong has not come yet.
    _awaiting_pong: bool = False

    # ----- ping / pong --------------------------------------------------------------------------

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
        if not await self._fits(text):
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
            await self._on_ping(message.payload)
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

    async def _on_connection_init(self, payload: object) -> None:
        if self._init_received:
            await self.socket.close(
                CloseCode.TOO_MANY_INITIALISATION_REQUESTS, "Too many initialisation requests"
            )
            return
        refused = await self._acknowledge(payload)
        if refused is not None:
            await self.socket.close(*refused)
            return
        self._schedule_ping()

    async def _on_ping(self, payload: object) -> None:
        """A `ping` gets its `pong`. With `on_refresh` set, one with a payload on an
        acknowledged connection carries new credentials: refreshed, the `pong` carries the
        new context's `ack_payload`; refused, the connection closes instead (4403)."""
        if self.on_refresh is None or not self._acknowledged or not isinstance(payload, dict):
            await self.socket.send(_PONG)
            return
        if not await self._refresh(payload):
            return
        ack_payload = self.connection.context.ack_payload
        if ack_payload is None:
            await self.socket.send(_PONG)
        else:
            await self.socket.send(dumps({"type": "pong", "payload": dict(ack_payload)}))

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
        payload = message.subscribe_payload()
        await self._start(
            op_id,
            payload.query,
            payload.operation_name,
            payload.variables or None,
            payload.extensions,
        )
