"""What every protocol shares: its options, the `on_connect` hook and how its verdict is read,
the `ProtocolSocket` a transport gives a protocol, and the bookkeeping of live operations.

A protocol decides, its transport does I/O: a protocol object is fed what the client sent and
answers through its `ProtocolSocket` (send, close, call_later), so the same protocol logic runs
over an ASGI WebSocket, an SSE response, or a socket owned by another I/O layer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson
from graphql import GraphQLError

from ..connection import Connection
from ..context import ConnectionContext
from ..limits import Limit, RateLimit, limited_error

__all__ = [
    "OnConnect",
    "OnRefresh",
    "Operations",
    "ProtocolOptions",
    "ProtocolSocket",
    "Timer",
    "authenticate",
    "dumps",
    "rate_limit",
    "refresh",
    "too_many_operations",
]

#: `on_connect(payload, request)` returns who the connection acts for: a `ConnectionContext`,
#: a dict with its keys, True/None (anonymous) or False (refused); it may be async and may
#: raise PermissionError to refuse. `payload` is the `connection_init` payload on WebSockets
#: and None over SSE, where the request (headers, cookies) is what it decides from. A hook
#: with a parameter named `context` also gets what the route's `context_getter` returned.
OnConnect = Callable[..., Any]

#: `on_refresh(payload, context)` renews a live connection's credentials: graphql-transport-ws
#: calls it for each `ping` with a payload (the new credentials) once the connection is
#: acknowledged, with the connection's `ConnectionContext`. It returns the new context (a
#: `ConnectionContext` or a dict, with its `expires_at`), True/None to keep the context as it
#: is, or False (or raises PermissionError) to refuse, which closes the connection (4403). It
#: may be async. A new context must be for the same user and tenant and keep every role and
#: permission (see `ConnectionContext.may_become`), or the refresh is refused.
OnRefresh = Callable[[Any, ConnectionContext], Any]


@dataclass(frozen=True)
class ProtocolOptions:
    """Limits, timers (seconds; None disables a timer) and which protocols are served.

    `graphql_transport_ws`, `graphql_ws` (the legacy subscriptions-transport-ws protocol) and
    `sse` (GraphQL over Server-Sent Events) turn each protocol on or off; all are on by
    default. `keepalive_interval` is how often the legacy protocol sends `ka` and SSE streams
    send a comment line. `subscribe_rate` is how many operations a connection may start per
    second on average (None: no limit), and `subscribe_burst` at once (None: as many as
    `max_subscriptions`, and at least 100): past it an operation gets an `error`
    (RATE_LIMITED), and a connection that sends `subscribe_burst` more while refused is closed
    (1008) as abusive.
    """

    connection_init_timeout: float = 3.0
    ping_interval: float | None = 15.0
    pong_timeout: float = 10.0
    max_subscriptions: int = 100
    max_message_size: int = 1 << 20
    keepalive_interval: float | None = 12.0
    subscribe_rate: float | None = 10.0
    subscribe_burst: int | None = None
    graphql_transport_ws: bool = True
    graphql_ws: bool = True
    sse: bool = True


class Timer(Protocol):
    """A pending `call_later`."""

    def cancel(self) -> None:
        """Cancels the call if it has not run yet."""
        ...


class ProtocolSocket(Protocol):
    """What a protocol needs from its transport. Frames the core queued for the connection
    are sent by the transport itself; the protocol sends only its own control messages."""

    @property
    def request(self) -> Any:
        """The framework's request/WebSocket object (handed to `on_connect`)."""
        ...

    def release_request(self) -> None:
        """`on_connect` accepted the connection: the request it decided from is not needed
        any more, and the transport may let it go (an idle connection keeps only its state)."""
        ...

    async def send(self, text: str) -> None:
        """Sends one message, after any frame being sent now."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Closes the connection with `code` (once; later calls do nothing)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], Awaitable[None]]) -> Timer:
        """Runs `callback()` after `delay` seconds unless cancelled or the connection closed."""
        ...

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        """Holds off the sending of frames: inside it, no frame is on its way out."""
        ...


def dumps(message: Mapping[str, Any]) -> str:
    """A control message as JSON text."""
    return orjson.dumps(message).decode()


async def authenticate(
    on_connect: OnConnect | None,
    payload: Mapping[str, Any] | None,
    request: Any,
    request_context: Any = None,
) -> ConnectionContext | None:
    """Runs `on_connect`; the connection's context (with `request_context`, what the route's
    `context_getter` returned), or None when it refuses. Fails closed: anything but a
    context, a dict, True or None is a refusal (TypeError is raised for a value of the wrong
    type, so the mistake is seen)."""
    verdict: Any = None
    if on_connect is not None:
        if _takes_context(on_connect):
            verdict = await _verdict(on_connect, payload, request, context=request_context)
        else:
            verdict = await _verdict(on_connect, payload, request)
        if verdict is False:
            return None
    return _with_request_context(ConnectionContext.from_value(verdict), request_context)


async def refresh(
    on_refresh: OnRefresh, payload: Mapping[str, Any], context: ConnectionContext
) -> ConnectionContext | None:
    """Runs `on_refresh`; the connection's context from now on, or None when it refuses. Fails
    closed like `authenticate`, and a context the current one may not become is a refusal."""
    verdict = await _verdict(on_refresh, payload, context)
    if verdict is False:
        return None
    if verdict is None or verdict is True:
        return context
    refreshed = ConnectionContext.from_value(verdict)
    if not context.may_become(refreshed):
        return None
    return _with_request_context(refreshed, context.request_context)


async def _verdict(hook: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """What a hook returned (awaited when it is async); False when it raised PermissionError."""
    try:
        verdict = hook(*args, **kwargs)
        if inspect.isawaitable(verdict):
            verdict = await verdict
    except PermissionError:
        return False
    return verdict


def _with_request_context(context: ConnectionContext, request_context: Any) -> ConnectionContext:
    """`context`, with `request_context` unless it has one of its own."""
    if request_context is None or context.request_context is not None:
        return context
    return dataclasses.replace(context, request_context=request_context)


def _takes_context(on_connect: OnConnect) -> bool:
    """True when the hook has a parameter named `context` (or takes any keyword); read once
    per hook (every connection asks)."""
    try:
        return _signature_takes_context(on_connect)
    except TypeError:  # an unhashable callable: read its signature each time
        return _signature_takes_context.__wrapped__(on_connect)


@functools.lru_cache(maxsize=64)
def _signature_takes_context(on_connect: OnConnect) -> bool:
    try:
        parameters = inspect.signature(on_connect).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
    return any(
        parameter.name == "context" or parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in parameters
    )


def too_many_operations(limit: int) -> GraphQLError:
    """The error for a subscribe past `max_subscriptions`."""
    return GraphQLError(
        f"Too many operations on this connection (at most {limit})",
        extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
    )


#: Operations a connection may start at once when `subscribe_burst` is None (or more, up to
#: `max_subscriptions`: a client may open all the subscriptions it is allowed at once).
DEFAULT_SUBSCRIBE_BURST: Final = 100


@functools.lru_cache(maxsize=64)
def rate_limit(options: ProtocolOptions) -> RateLimit | None:
    """The rate of a connection's operation starts (None: `subscribe_rate` is off); one per
    set of options, shared by its connections."""
    if options.subscribe_rate is None:
        return None
    burst = options.subscribe_burst
    if burst is None:
        burst = max(options.max_subscriptions, DEFAULT_SUBSCRIBE_BURST)
    return RateLimit(options.subscribe_rate, burst)


class Operations:
    """The live operations of a connection, by client-chosen id: subscriptions (None) and
    running queries (their task). A query leaves when it is done; a subscription the core ended
    (error, lag) stays until its id is looked up, the client completes it, or enough of them
    are pruned (`at_limit`)."""

    def __init__(self, connection: Connection, limit: int, rate: RateLimit | None = None) -> None:
        self.connection = connection
        self.limit = limit
        #: How fast operations may start (None: no limit), and what that allows now: the
        #: rate's next arrival time, and how many starts it refused since the last it let go.
        self.rate = rate
        self._arrival: float | None = None
        self._refused = 0
        self._ops: dict[str, asyncio.Task[None] | None] = {}
        #: How many entries of `_ops` are queries.
        self._queries = 0

    def __len__(self) -> int:
        return len(self._ops)

    def ids(self) -> list[str]:
        """The ids of the operations, live or ended but not yet looked up."""
        return list(self._ops)

    @classmethod
    def of(cls, connection: Connection, options: ProtocolOptions) -> Operations:
        """The operations of `connection` under `options`' limits."""
        return cls(connection, options.max_subscriptions, rate_limit(options))

    def rate_refusal(self) -> GraphQLError | None:
        """The error for an operation started faster than the rate allows (counted), or None
        when it may start."""
        if self.rate is None:
            return None
        arrival = self.rate.admit(self._arrival)
        if arrival is not None:
            self._arrival, self._refused = arrival, 0
            return None
        self._refused += 1
        self.connection.count_limited(Limit.SUBSCRIBE_RATE)
        return limited_error(
            f"Too many operations started on this connection (at most"
            f" {self.rate.rate:g} per second)"
        )

    @property
    def abusive(self) -> bool:
        """True once the client has sent a burst more operations while refused (close it:
        1008)."""
        return self.rate is not None and self._refused > self.rate.burst

    def add_subscription(self, op_id: str) -> None:
        self._ops[op_id] = None

    def add_query(self, op_id: str, task: asyncio.Task[None]) -> None:
        self._ops[op_id] = task
        self._queries += 1

    def query_finished(self, op_id: str, task: asyncio.Task[Any] | None) -> bool:
        """A query's task is done: removes it; False if it was already forgotten (completed
        by the client, or the connection closed), when its result must not be sent."""
        ours = task is not None and self._ops.get(op_id) is task
        if ours:
            self._remove(op_id)
        return ours

    def is_live(self, op_id: str) -> bool:
        """A subscription the core ended (error, lag) is no longer live: its id is free."""
        if op_id not in self._ops:
            return False
        task = self._ops[op_id]
        live = self.connection.is_live(op_id) if task is None else not task.done()
        if not live:
            self._remove(op_id)
        return live

    def at_limit(self) -> bool:
        """True when `limit` operations are live, in constant time (amortised): the core
        counts the connection's live subscriptions, and every query here is running. Entries
        of subscriptions the core ended are pruned once they are as many as the limit, which
        keeps this under twice the limit."""
        live = self.connection.live_count + self._queries
        if len(self._ops) - live >= self.limit:
            for op_id in list(self._ops):
                self.is_live(op_id)
        return live >= self.limit

    def forget(self, op_id: str) -> None:
        """Ends an operation on our side (client complete/stop, shutdown, disconnect)."""
        if op_id not in self._ops:
            return
        task = self._remove(op_id)
        if task is None:
            self.connection.complete(op_id)
        else:
            task.cancel()

    def forget_all(self) -> list[str]:
        """Ends every operation; returns their ids."""
        ids = list(self._ops)
        for op_id in ids:
            self.forget(op_id)
        return ids

    def _remove(self, op_id: str) -> asyncio.Task[None] | None:
        task = self._ops.pop(op_id)
        if task is not None:
            self._queries -= 1
        return task
