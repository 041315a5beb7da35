"""What the two WebSocket protocols, graphql-transport-ws and the legacy graphql-ws, share: the
close codes, and `OperationProtocol`, the part of their state machines that is the same in
both (the init deadline, `on_connect` and the ack, starting an operation, the messages of its
result and its end, shutdown). Each protocol module adds its own messages and rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from enum import IntEnum
from typing import Any, ClassVar

from graphql import GraphQLError

from ..connection import Connection
from ..context import ConnectionContext
from ..schema import PreparedOperation
from .common import (
    OnConnect,
    OnRefresh,
    Operations,
    ProtocolOptions,
    ProtocolSocket,
    Timer,
    authenticate,
    dumps,
    refresh,
    too_many_operations,
)

__all__ = ["TOKEN_EXPIRED", "CloseCode", "OperationProtocol"]

#: The reason of the 4403 close when the connection's credentials expired.
TOKEN_EXPIRED = "Token expired"


class CloseCode(IntEnum):
    """Close codes of graphql-transport-ws (and the WebSocket ones we use). The legacy
    graphql-ws has none of its own; we close it with the same codes for the same reasons."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    #: Not sent: what a connection that ended without a close frame is counted as.
    ABNORMAL_CLOSURE = 1006
    #: A client that keeps starting operations past the rate it is refused at.
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_SERVER_ERROR = 4500
    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    SUBPROTOCOL_NOT_ACCEPTABLE = 4406
    CONNECTION_INITIALISATION_TIMEOUT = 4408
    SUBSCRIBER_ALREADY_EXISTS = 4409
    TOO_MANY_INITIALISATION_REQUESTS = 4429
    #: Past the connections a user or tenant may hold (`Limits`); the code of HTTP's 429.
    TOO_MANY_REQUESTS = 4429
    #: The client did not answer a server ping in time (not in the protocol; 4xxx is ours).
    PONG_TIMEOUT = 4504


class OperationProtocol:
    """The common part of a WebSocket protocol serving GraphQL operations on one connection.

    The transport calls `opened` once, `received` for each text message (in the subclass),
    `received_binary`, `shutdown` on server shutdown and `closed` once the connection has
    closed, from either side. Operation messages have the shape
    `{"id", "type", "payload"}`; `result_type` names the one carrying a result."""

    subprotocol: ClassVar[str]
    envelope: ClassVar[str]
    #: The type of the message carrying an operation's result (`next`, or `data`).
    result_type: ClassVar[str]

    def __init__(
        self,
        connection: Connection,
        socket: ProtocolSocket,
        *,
        on_connect: OnConnect | None = None,
        on_refresh: OnRefresh | None = None,
        options: ProtocolOptions | None = None,
        request_context: Any = None,
    ) -> None:
        self.connection = connection
        self.socket = socket
        self.on_connect = on_connect
        #: Renews the credentials in band (graphql-transport-ws `ping` payloads).
        self.on_refresh = on_refresh
        #: What the route's `context_getter` returned for the handshake (for `on_connect`).
        self.request_context = request_context
        self.options = options or ProtocolOptions()
        self.operations = Operations.of(connection, self.options)
        self._init_received = False
        self._acknowledged = False
        #: The pending timer: the init deadline, then the protocol's heartbeat.
        self._timer: Timer | None = None
        #: When the connection's credentials expire (a context with `expires_at`).
        self._expiry: Timer | None = None

    # ----- lifecycle ------------------------------------------------------------------------

    async def opened(self) -> None:
        """The socket is open: the client has `connection_init_timeout` to be acknowledged."""
        self._timer = self.socket.call_later(
            self.options.connection_init_timeout, self._init_timeout
        )

    async def shutdown(self) -> None:
        """Server shutdown: every live operation gets `complete`, then the socket closes 1001.
        Subscriptions the core already ended (their `error` was sent) get nothing more."""
        live = [op_id for op_id in self.operations.ids() if self.operations.is_live(op_id)]
        self.operations.forget_all()
        for op_id in live:
            await self.socket.send(self.complete_message(op_id))
        await self.socket.close(CloseCode.GOING_AWAY, "Server shutting down")

    def closed(self) -> None:
        """The connection closed: ends every operation and timer."""
        self.operations.forget_all()
        if self._timer is not None:
            self._timer.cancel()
        if self._expiry is not None:
            self._expiry.cancel()

    async def received_binary(self) -> None:
        """The client sent a binary message, which neither protocol has."""
        await self.socket.close(CloseCode.BAD_REQUEST, "Binary messages are not supported")

    async def _init_timeout(self) -> None:
        if not self._acknowledged:
            await self.socket.close(
                CloseCode.CONNECTION_INITIALISATION_TIMEOUT, "Connection initialisation timeout"
            )

    # ----- what both protocols do with a message ------------------------------------------

    async def _fits(self, text: str) -> bool:
        """False (and the socket closed 1009) for a message over `max_message_size`."""
        if len(text) > self.options.max_message_size:
            await self.socket.close(CloseCode.MESSAGE_TOO_BIG, "Message too big")
            return False
        return True

    async def _acknowledge(self, payload: Any) -> tuple[int, str] | None:
        """`connection_init`: runs `on_connect` with its payload; once it accepts, and the
        user's and tenant's quotas of connections allow, sends `connection_ack` (with the
        context's `ack_payload`) and returns None. A refusal sends nothing and returns the
        code and reason to close with (4403, or 4429 past a quota): what follows is the
        protocol's."""
        self._init_received = True
        context = await authenticate(
            self.on_connect,
            payload if isinstance(payload, Mapping) else None,
            self.socket.request,
            self.request_context,
        )
        if context is None:
            return CloseCode.FORBIDDEN, "Forbidden"
        if context.is_expired():
            return CloseCode.FORBIDDEN, TOKEN_EXPIRED
        if self.connection.admit(context) is not None:
            return CloseCode.TOO_MANY_REQUESTS, "Too many connections"
        self._set_context(context)
        self.socket.release_request()
        if self._timer is not None:  # the init deadline is met
            self._timer.cancel()
            self._timer = None
        ack: dict[str, Any] = {"type": "connection_ack"}
        if context.ack_payload is not None:
            ack["payload"] = dict(context.ack_payload)
        self._acknowledged = True
        await self.socket.send(dumps(ack))
        return None

    def _set_context(self, context: ConnectionContext) -> None:
        """The connection acts for `context` from now on; its expiry (re)armed."""
        self.connection.context = context
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        left = context.seconds_left()
        if left is not None:
            self._expiry = self.socket.call_later(max(left, 0.0), self._expired)

    async def _expired(self) -> None:
        # A refresh cancels this timer; one still running when it fires comes too late.
        await self.socket.close(CloseCode.FORBIDDEN, TOKEN_EXPIRED)

    async def _refresh(self, payload: Mapping[str, Any]) -> bool:
        """New credentials in band: `on_refresh` decides. Accepted, the connection's context
        and expiry are the new ones and True is returned; refused, the connection closes
        (4403) and False is returned. New operations are checked against the new context;
        live subscriptions keep running (the identity and grants they were allowed by stay),
        and their resolvers keep the context they were started with."""
        assert self.on_refresh is not None
        context = await refresh(self.on_refresh, payload, self.connection.context)
        if context is None:
            await self.socket.close(CloseCode.FORBIDDEN, "Forbidden")
            return False
        if context.is_expired():
            await self.socket.close(CloseCode.FORBIDDEN, TOKEN_EXPIRED)
            return False
        self._set_context(context)
        return True

    async def _start(
        self,
        op_id: str,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        """Starts operation `op_id` (the protocol has checked the connection may): within the
        limit, validated, then a subscription in the core or a query run in a task. Errors are
        an error message for it; the connection stays."""
        if self.operations.at_limit():
            await self._send_errors(op_id, [too_many_operations(self.operations.limit)])
            return
        limited = self.operations.rate_refusal()
        if limited is not None:
            if self.operations.abusive:
                await self.socket.close(CloseCode.POLICY_VIOLATION, "Rate limit exceeded")
            else:
                await self._send_errors(op_id, [limited])
            return
        prepared = self.connection.prepare(query, operation_name, variables)
        if isinstance(prepared, list):
            await self._send_errors(op_id, prepared)
            return
        if prepared.kind == "subscription":
            errors = self.connection.subscribe(op_id, prepared, extensions)
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
        await self.socket.send(dumps({"id": op_id, "type": self.result_type, "payload": result}))
        await self.socket.send(self.complete_message(op_id))

    async def _send_errors(self, op_id: str, errors: list[GraphQLError]) -> None:
        """An `error` message for `op_id`: the errors formatted (masked) as a list, the shape
        the core's own `error` frames have in both protocols."""
        payload = self.connection.errors.format_all(errors)
        await self.socket.send(dumps({"id": op_id, "type": "error", "payload": payload}))

    @staticmethod
    def complete_message(op_id: str) -> str:
        """The `complete` message of `op_id` (the same in both protocols)."""
        return dumps({"id": op_id, "type": "complete"})
