"""The legacy graphql-ws protocol (subscriptions-transport-ws, Apollo's `WebSocketLink`), server
side, as one state machine over a `Connection` and a `ProtocolSocket`.

The protocol (subscriptions-transport-ws 0.11 `PROTOCOL.md`, `src/server.ts`) defines messages
but no close codes, no init deadline and no check that `connection_init` came first; we close
with graphql-transport-ws's codes for the same reasons and keep its rules where the legacy
server had none:

- `connection_init` -> `on_connect(payload, request)` -> `connection_ack`, then `ka` at once and
  every `keepalive_interval` seconds. A refusal is `connection_error` with
  `{"message": "Forbidden"}` (nothing of the hook's reasons; "Token expired", or "Too many
  connections" and 4429 past a user's or tenant's quota) then close 4403 (the reference
  server closes 1011, "internal error", which is not what happened). No `connection_init` acked
  within `connection_init_timeout`: 4408 (the reference server has no deadline). A second
  `connection_init`: 4429 (the reference server would run `onConnect` again and start a second
  keep-alive; a connection does not change whom it acts for). When the context `on_connect`
  returned has an `expires_at`, the connection closes 4403 "Token expired" at that time (the
  protocol has no message to refresh credentials on: the client reconnects with new ones).
- `start` before `connection_init` was acknowledged: 4401, never executed (the reference
  server runs it unauthenticated; Strawberry's CVE-2026-35526). Messages are handled in order,
  so a `start` sent right after `connection_init` (as SubscriptionClient does, without waiting
  for the ack) waits for `on_connect`'s verdict.
- `start` {query, variables, operationName}: a subscription goes to the core, whose frames are
  `data` messages (and an `error` if the core ends it: EVENTS_LAGGED); a query or mutation
  sends `data` then `complete`. Validation errors, refusals and the operation limit
  (TOO_MANY_SUBSCRIPTIONS) are an `error` message whose payload is the list of formatted
  GraphQL errors, the shape of the core's `error` frames (the client's `formatErrors` takes a
  list as it is and hands its observer the first error). A `start` for an id that is live
  replaces that operation, as the reference server does; the old one gets no `complete`, which
  the client would take for the end of the new one.
- `stop`: no `data` of the operation is sent once it is handled, then `complete` (as the
  reference server sends when the operation's iterator returns); an id that is not live is
  ignored. `connection_terminate`: close 1000.
- Anything else (not JSON, not an object, an unknown or server-to-client type, a message
  without the id or payload its type needs): close 4400 with the reason. Binary: 4400. Over
  `max_message_size`: 1009. Server shutdown: `complete` for every live operation, then 1001.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Final

import orjson

from .common import dumps
from .websocket import CloseCode, OperationProtocol

__all__ = [
    "GRAPHQL_WS",
    "ClientMessage",
    "ConnectionInit",
    "ConnectionTerminate",
    "GraphQLWSProtocol",
    "InvalidMessage",
    "MessageType",
    "Start",
    "Stop",
    "parse_message",
]

#: The WebSocket subprotocol, and the core's envelope for its frames.
GRAPHQL_WS: Final = "graphql-ws"


class MessageType(str, Enum):
    """Message types of graphql-ws (subscriptions-transport-ws)."""

    CONNECTION_INIT = "connection_init"
    CONNECTION_ACK = "connection_ack"
    CONNECTION_ERROR = "connection_error"
    #: Keep-alive, server to client.
    CONNECTION_KEEP_ALIVE = "ka"
    CONNECTION_TERMINATE = "connection_terminate"
    START = "start"
    DATA = "data"
    ERROR = "error"
    COMPLETE = "complete"
    STOP = "stop"


#: What a client may send; the rest are the server's.
CLIENT_TYPES: Final = frozenset(
    {
        MessageType.CONNECTION_INIT,
        MessageType.CONNECTION_TERMINATE,
        MessageType.START,
        MessageType.STOP,
    }
)

_KEEP_ALIVE: Final = dumps({"type": MessageType.CONNECTION_KEEP_ALIVE.value})
#: Longest stretch of client text echoed in a close reason (at most 123 bytes in all).
_MAX_ECHO: Final = 40


# ----- the client's messages, validated in one place ------------------------------------------


class InvalidMessage(ValueError):
    """A message the protocol does not take; its text is the close reason."""


@dataclass(frozen=True, slots=True)
class ConnectionInit:
    """`connection_init`: the client's connection parameters (an object, or None)."""

    payload: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Start:
    """`start`: operation `id` with its query, operation name, variables and extensions."""

    id: str
    query: str
    operation_name: str | None
    variables: Mapping[str, Any] | None
    extensions: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """`stop`: the client ends operation `id`."""

    id: str


@dataclass(frozen=True, slots=True)
class ConnectionTerminate:
    """`connection_terminate`: the client is leaving."""


ClientMessage = ConnectionInit | Start | Stop | ConnectionTerminate


def parse_message(text: str) -> ClientMessage:
    """Parses and validates one message from a client; raises `InvalidMessage` (with a reason
    short enough for a close frame) for anything the protocol does not allow a client to send.
    Properties outside the protocol are ignored, as the reference server does."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidMessage("Message is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidMessage("Message must be a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise InvalidMessage("Message must have a string 'type'")
    try:
        message_type = MessageType(kind)
    except ValueError:
        raise InvalidMessage(f'Unknown message type "{kind[:_MAX_ECHO]}"') from None
    if message_type not in CLIENT_TYPES:
        raise InvalidMessage(f'Unexpected message of type "{kind}" received')
    if message_type is MessageType.CONNECTION_INIT:
        payload = value.get("payload")
        if payload is not None and not isinstance(payload, dict):
            raise InvalidMessage("\"connection_init\" 'payload' must be an object")
        return ConnectionInit(payload)
    if message_type is MessageType.CONNECTION_TERMINATE:
        return ConnectionTerminate()
    op_id = value.get("id")
    if not isinstance(op_id, str) or not op_id:
        raise InvalidMessage(f"\"{kind}\" message must have a non-empty string 'id'")
    if message_type is MessageType.STOP:
        return Stop(op_id)
    return _start(op_id, value.get("payload"))


def _start(op_id: str, payload: Any) -> Start:
    if not isinstance(payload, dict):
        raise InvalidMessage("\"start\" message must have an object 'payload'")
    query = payload.get("query")
    if not isinstance(query, str):
        raise InvalidMessage("\"start\" 'payload.query' must be a string")
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise InvalidMessage("\"start\" 'payload.operationName' must be a string or null")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise InvalidMessage("\"start\" 'payload.variables' must be an object or null")
    extensions = payload.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise InvalidMessage("\"start\" 'payload.extensions' must be an object or null")
    return Start(op_id, query, operation_name, variables or None, extensions or None)


# ----- the state machine ------------------------------------------------------------------------


class GraphQLWSProtocol(OperationProtocol):
    """Serves one connection with the legacy graphql-ws protocol (see the module docstring for
    its rules). The transport calls `opened` once, `received` for each text message, `shutdown`
    on server shutdown and `closed` once the connection has closed, from either side."""

    subprotocol: ClassVar[str] = GRAPHQL_WS
    envelope: ClassVar[str] = GRAPHQL_WS
    result_type: ClassVar[str] = MessageType.DATA.value

    async def received(self, text: str) -> None:
        """Handles one text message from the client."""
        if not await self._fits(text):
            return
        try:
            message = parse_message(text)
        except InvalidMessage as error:
            await self.socket.close(CloseCode.BAD_REQUEST, str(error))
            return
        match message:
            case ConnectionInit(payload):
                await self._on_connection_init(payload)
            case Start():
                await self._on_start(message)
            case Stop(op_id):
                await self._on_stop(op_id)
            case ConnectionTerminate():
                await self.socket.close(CloseCode.NORMAL_CLOSURE, "Connection terminated")

    async def _on_connection_init(self, payload: Mapping[str, Any] | None) -> None:
        if self._init_received:
            await self.socket.close(
                CloseCode.TOO_MANY_INITIALISATION_REQUESTS, "Too many initialisation requests"
            )
            return
        refused = await self._acknowledge(payload)
        if refused is not None:
            code, reason = refused
            error = {"type": MessageType.CONNECTION_ERROR.value, "payload": {"message": reason}}
            await self.socket.send(dumps(error))
            await self.socket.close(code, reason)
            return
        await self._keep_alive()

    async def _keep_alive(self) -> None:
        """Sends `ka` and schedules the next one (none at all when the interval is None)."""
        interval = self.options.keepalive_interval
        if not interval:
            return
        self._timer = self.socket.call_later(interval, self._keep_alive)
        await self.socket.send(_KEEP_ALIVE)

    async def _on_start(self, start: Start) -> None:
        if not self._acknowledged:
            await self.socket.close(CloseCode.UNAUTHORIZED, "Unauthorized")
            return
        if self.operations.is_live(start.id):
            async with self.socket.exclusive():
                self.operations.forget(start.id)
        await self._start(
            start.id, start.query, start.operation_name, start.variables, start.extensions
        )

    async def _on_stop(self, op_id: str) -> None:
        # No frame of the operation may be sent once its stop is handled; `complete` goes last.
        async with self.socket.exclusive():
            live = self.operations.is_live(op_id)
            self.operations.forget(op_id)
        if live:
            await self.socket.send(self.complete_message(op_id))
