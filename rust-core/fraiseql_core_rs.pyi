"""Type stubs for the compiled module `fraiseql_core_rs` (the Rust core of fraiseql-fastapi).

Every class is available both here and in the submodule `fraiseql_core_rs.subscriptions`.
Checked against the compiled module by `python -m mypy.stubtest fraiseql_core_rs`.
"""

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from types import ModuleType
from typing import Any, ClassVar, Literal, TypedDict, final

from typing_extensions import NotRequired

__all__ = [
    "PyComplete",
    "PyEvent",
    "PyEventBusConfig",
    "PyGraphQLMessage",
    "PySubscriptionExecutor",
    "PySubscriptionPayload",
    "__version__",
    "subscriptions",
]

__version__: str

#: The same classes, as the submodule the original plan names.
subscriptions: ModuleType

OverflowPolicy = Literal["lag", "drop_oldest"]
#: How a connection's protocol wraps frames (`open_connection(envelope=...)`).
Envelope = Literal["graphql-transport-ws", "graphql-ws", "sse-distinct", "sse-single"]
ResolverScope = Literal["global", "tenant", "user", "subscription"]
FilterOp = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains"]

class VariableFilter(TypedDict, total=False):
    """`{"field": "room_id", "op": "eq", "variable": "roomId"}`: compare a field of the event
    data (a dotted path) with one of the subscription's variables. A variable that is absent or
    null disables the filter."""

    field: str
    op: FilterOp
    variable: str

class ValueFilter(TypedDict, total=False):
    """`{"field": "price", "op": "gt", "value": 10}`: compare a field with a constant."""

    field: str
    op: FilterOp
    value: Any

#: A resolver: `(event, variables, context) -> result | None`, sync or async. The result (a
#: JSON-compatible value) is the root field's value; None sends nothing.
Resolver = Callable[["PyEvent", Any, Any], Any]

#: What a client sees of a failed resolver call: `(exception, root field name) -> {"message":
#: str, "extensions": {...} | None}`; called once per failed call (per group, not subscriber).
FormatError = Callable[[BaseException, str], Mapping[str, Any]]

@final
class PyComplete:
    """What a resolver returns to end its subscriptions: `result` (unless None) is their last
    `next`, then they get `complete`."""

    def __new__(cls, result: Any = None) -> PyComplete: ...
    @property
    def result(self) -> Any: ...

@final
class PyEvent:
    """The event passed to resolvers as their first argument."""

    @property
    def id(self) -> int:
        """Sequence number of the event in this executor."""
    @property
    def channel(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def data(self) -> Any:
        """The data given to `publish_event`, as given."""
    @property
    def tenant_id(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def ts(self) -> float:
        """Publish time, seconds since the Unix epoch."""

class Metrics(TypedDict):
    """What `PySubscriptionExecutor.get_metrics()` returns."""

    active_connections: int
    active_subscriptions: int
    channels: int
    resolution_groups: int
    queued_frames: int
    events_published: int
    events_delivered: int
    frames_queued: int
    frames_sent: int
    events_filtered_event_type: int
    events_filtered_tenant: int
    events_filtered_user: int
    events_filtered_args: int
    subscriptions_registered: int
    subscriptions_refused: int
    subscriptions_completed: int
    resolver_calls: int
    resolver_errors: int
    resolver_skips: int
    queue_overflows: int
    frames_dropped: int
    frames_conflated: int
    frames_held: int
    events_replayed: int
    resume_gaps: int
    pending_resolutions: int
    native_sockets: int
    bus_type: str
    # With a Redis or PostgreSQL bus only:
    bus_inbound_pending: NotRequired[int]
    bus_events_malformed: NotRequired[int]
    bus_connected: NotRequired[bool]
    bus_reconnects: NotRequired[int]
    bus_last_error: NotRequired[str | None]
    bus_published: NotRequired[int]
    bus_received: NotRequired[int]
    bus_replayed: NotRequired[int]
    bus_duplicates_dropped: NotRequired[int]  # Redis only
    bus_lag_ms: NotRequired[int]
    bus_publish_queue: NotRequired[int]
    bus_channels: NotRequired[int]  # PostgreSQL only

@final
class PySubscriptionExecutor:
    """The subscription engine: registry, channel index, filters and security checks, resolver
    grouping, projection, bounded per-connection queues and metrics.

    Frames are complete graphql-transport-ws messages. Per connection they are queued in order;
    when a queue is full, `overflow_policy` applies: "lag" (default) ends the overflowing
    subscription with an `error` whose `extensions.code` is "EVENTS_LAGGED", "drop_oldest"
    drops the connection's oldest frame.
    """

    def __new__(
        cls,
        config: PyEventBusConfig | None = None,
        *,
        max_queue: int = 1000,
        overflow_policy: OverflowPolicy = "lag",
        schema: Mapping[str, Any] | None = None,
        format_error: FormatError | None = None,
    ) -> PySubscriptionExecutor:
        """`schema` describes the GraphQL schema so that responses follow it (static
        `__typename`, scalar coercion, null bubbling with `errors`, fields read from their source
        keys)::

            {"subscription_type": "Subscription",
             "types": {"Message": {"kind": "OBJECT",
                                   "fields": {"roomId": {"type": "String!", "source": "room_id"}}},
                       "Node": {"kind": "INTERFACE", "fields": {...}, "possible_types": ["Message"]},
                       "Color": {"kind": "ENUM", "values": ["RED"]},
                       "DateTime": {"kind": "SCALAR"}}}

        Without it, data is projected by field name and sent as it is. ValueError if invalid.

        A resolver that raises (or returns something that is not JSON) for an event gives that
        event's subscribers a `next` with the error at the root field's path and the field
        null (`data` null when the field is non-null); they keep receiving later events.
        `format_error(exception, field_name)` is called once per failed call and returns what
        the client sees, `{"message": ..., "extensions": {...}}`; without it, or when it fails,
        the message is "Internal server error" with code INTERNAL_SERVER_ERROR.
        """
    @property
    def config(self) -> PyEventBusConfig:
        """The event bus configuration (memory unless given)."""
    def open_connection(
        self,
        connection_id: str,
        on_frames: Callable[[], object] | None = None,
        *,
        max_queue: int | None = None,
        overflow_policy: OverflowPolicy | None = None,
        envelope: Envelope = "graphql-transport-ws",
    ) -> None:
        """Opens or reconfigures a connection. `on_frames()` is called when the connection's
        queue goes from empty to non-empty (once until the next `drain`). `envelope` is how its
        protocol wraps frames (`next` or legacy `data` messages, SSE `event: next` records);
        it applies to subscriptions registered after the call. On a connection with an adopted
        socket (`adopt_socket`) only the settings change; `on_frames` is then a ValueError."""
    def register_subscription(
        self,
        connection_id: str,
        subscription_id: str,
        query: str,
        operation_name: str | None = None,
        variables: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        tenant_id: str | None = None,
        *,
        operation_id: str | None = None,
        channels: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        resolver: Resolver | None = None,
        resolver_scope: ResolverScope = "user",
        context: Any = None,
        filters: Sequence[VariableFilter | ValueFilter | Mapping[str, Any]] | None = None,
        arguments: Mapping[str, Any] | None = None,
        resolver_arguments: Any = None,
        conflate: bool = False,
        positions: bool = False,
        resume_from: str | None = None,
        max_rate: float | None = None,
    ) -> None:
        """Registers a subscription (ids are unique per executor; `operation_id`, default the
        subscription id, is the id written in its frames).

        The channel defaults to the root field's name. Without a resolver the event data is the
        root field's value; a resolver is called once per event for all subscriptions sharing
        it, its variables and its `resolver_scope`, with `context` (default: a dict of user_id
        and tenant_id).

        `arguments` (the root field's argument values, resolved by a schema-aware caller) take
        the place of `variables` for filters, resolver grouping and the resolver's second
        argument; `variables` still decide `@skip`/`@include`. Both pass the security check.
        `resolver_arguments`, when given, is what the resolver receives instead: the arguments
        as Python values, bound once at subscribe time (the subscribers of a group share the
        first one's, since their `arguments` are equal).

        `conflate=True` keeps only the latest value: an event for it while its previous `next`
        is still queued replaces that frame (in its place, counted in `frames_conflated`)
        instead of queuing another, so a slow client gets the latest values and never lags.

        `max_rate=n`: at most n `next` frames a second (a burst of one second's worth); the
        others are held, in order, and sent as their slots come (counted in `frames_held`;
        with `conflate`, only the latest is held); holding more than the connection's queue
        bound lags it. Held frames go out on a timer of the running loop.

        `positions=True`: each `next` payload carries the event's cursor in
        `extensions.cursor` (and an SSE distinct-mode event has it as its `id:`).
        `resume_from=cursor` (implies positions) first replays, to this subscription alone, in
        order and once each, the events of its one channel published after the cursor, then the
        live ones; when the history no longer covers the cursor (pruned, another epoch or bus)
        its first `next` is a field error with `extensions.code == "RESUME_GAP"`, then the live
        events follow. A cursor this server could not have issued, or a subscription on several
        channels, is a ValueError.

        Raises ValueError (invalid document, filter or option; duplicate id), TypeError (wrong
        types, non-JSON variables), PermissionError (variables naming another user or tenant).
        """
    def publish_event(
        self,
        event_type: str,
        channel: str,
        data: Any,
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> int:
        """Dispatches an event; returns how many subscriptions got a frame now. An event with a
        tenant_id (user_id) reaches only subscriptions of that tenant (user).

        With a Redis or PostgreSQL bus the event is queued for the bus and 0 is returned: every
        process, this one included, dispatches it when it comes back from the bus (one order
        per channel everywhere, no local duplicate). ConnectionError when the bus is down and
        its publish queue is full; RuntimeError before `start_bus()`."""
    def publish_event_async(
        self,
        event_type: str,
        channel: str,
        data: Any,
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> Awaitable[int]:
        """As `publish_event`; the awaitable resolves once async resolvers have delivered too."""
    def start_bus(self) -> None:
        """Connects the Redis or PostgreSQL bus and starts listening to the channels that have
        subscribers. Blocking: run it off the event loop (`loop.run_in_executor`). Raises
        ConnectionError naming the server. Does nothing for the in-memory bus."""
    def stop_bus(self) -> None:
        """Stops the bus (blocking briefly)."""
    @property
    def bus_fd(self) -> int | None:
        """A file descriptor that becomes readable when bus events wait for
        `process_bus_events()`; None for the in-memory bus and before `start_bus()` (created
        there, so a process forked before it gets its own)."""
    def process_bus_events(self) -> int:
        """Dispatches the events received from the bus, in order; returns how many
        subscriptions got a frame now. Call it on the event loop when `bus_fd` is readable."""
    def next_event(self, subscription_id: str) -> bytes | None:
        """The oldest queued frame of the subscription. KeyError if unknown."""
    def drain(self, connection_id: str) -> list[str]:
        """Every queued frame of the connection, oldest first, as text. KeyError if unknown."""
    def complete_subscription(self, subscription_id: str) -> None:
        """Ends a subscription and drops its queued frames. KeyError if unknown."""
    def complete_channel(self, channel: str) -> int:
        """Ends every subscription on `channel` with `complete`, after the frames already
        queued for them; returns how many. Local to this executor."""
    def remove_connection(self, connection_id: str) -> int:
        """Removes a connection and all its subscriptions and frames; returns how many
        subscriptions were active. KeyError if unknown."""
    def is_active(self, subscription_id: str) -> bool: ...
    def connection_active(self, connection_id: str) -> int:
        """How many of the connection's subscriptions are active (registered and not ended),
        in constant time. KeyError if unknown."""
    def connection_subscriptions(self, connection_id: str) -> list[str]:
        """Ids of the connection's active subscriptions. KeyError if unknown."""
    def adopt_socket(
        self,
        connection_id: str,
        fd: int,
        handshake: bytes = b"",
        *,
        max_message_size: int = 1048576,
        ping_interval: float | None = None,
        ping_timeout: float = 20.0,
    ) -> None:
        """Hands an upgraded WebSocket to the core, which serves it from then on on its own
        threads: the connection's frames are written as they are queued (coalesced, no
        `drain` or `on_frames` involved, the queue's overflow policy applying when the client
        reads too slowly), and what the client sends is reported by `take_socket_events()`.

        `fd` is a connected TCP socket whose HTTP upgrade is done; the core owns it from the
        call on (also when the call fails) and closes it when the socket ends. `handshake`, the
        HTTP 101 response, is written first. A message over `max_message_size` bytes closes
        the socket with 1009, text that is not UTF-8 with 1007, a protocol violation with 1002;
        pings are answered. With `ping_interval` (seconds) the core pings the client that
        often and closes it with 1011 when a pong takes over `ping_timeout`; a connection's
        queue at half its bound is written by the thread that filled it. The connection must be open
        (`open_connection`): KeyError if unknown, ValueError if it already has a socket,
        ConnectionError when the client has closed or reset it already, OSError when `fd` is
        not a connected socket. `remove_connection` ends the socket (the fd is
        closed), as does dropping the executor."""
    def socket_send(self, connection_id: str, text: str) -> None:
        """Sends a text message on the connection's adopted socket, after every frame queued
        for it before the call. Dropped once the socket is closing or closed. KeyError if the
        connection has no adopted socket."""
    def socket_close(self, connection_id: str, code: int = 1000, reason: str = "") -> None:
        """Closes the adopted socket after everything queued before the call (the reason is cut
        to 123 bytes); the client's close reply is awaited for at most a second, then the
        connection is dropped. Idempotent. KeyError if the connection has no adopted socket,
        ValueError for a code a server cannot send (1000-1003, 1007-1014, 3000-4999 are)."""
    @property
    def socket_events_fd(self) -> int:
        """A file descriptor that becomes readable when adopted sockets have events for
        `take_socket_events()` (created on first use); watch it with `loop.add_reader`."""
    def take_socket_events(
        self,
    ) -> list[tuple[str, Literal["text", "binary", "closed"], str | int | None]]:
        """What adopted sockets received since the last call, in arrival order, as
        `(connection_id, kind, value)`: ("text", the text), ("binary", None) (binary messages
        are not passed on) and, exactly once per socket, ("closed", code): the client's close
        code (1005 when it sent none), ours when the core or `socket_close` closed first, 1006
        when the connection ended without a close handshake (or was removed). Re-arms the
        wake-up of `socket_events_fd`."""
    def get_metrics(self) -> Metrics: ...
    def delivery_histogram(self) -> tuple[list[float], list[int], float]:
        """Time from publish (the event's `ts`) to its frame being drained for sending:
        `(bucket upper bounds in seconds, count per bucket, sum of seconds)`. Counts are per
        bucket, not cumulative, with one more entry than the bounds (above the last)."""

#: The `type` of a graphql-transport-ws message.
GraphQLMessageType = Literal[
    "connection_init",
    "connection_ack",
    "ping",
    "pong",
    "subscribe",
    "next",
    "error",
    "complete",
]

@final
class PySubscriptionPayload:
    """The payload of a `subscribe` message. Every field can be read and set."""

    query: str
    operation_name: str | None
    extensions: dict[str, Any] | None
    def __new__(
        cls,
        query: str,
        operation_name: str | None = None,
        variables: dict[str, Any] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> PySubscriptionPayload:
        """`variables` defaults to a new empty dict; the dicts given are kept, not copied."""
    @property
    def variables(self) -> dict[str, Any]:
        """The operation's variables (never None: setting None stores a new empty dict)."""
    @variables.setter
    def variables(self, value: dict[str, Any] | None) -> None: ...
    def to_dict(self) -> dict[str, Any]:
        """The wire form: `{"query", "operationName", "variables", "extensions"}`, without
        `extensions` when it is None. `variables` and `extensions` are shallow copies."""
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class PyGraphQLMessage:
    """A validated graphql-transport-ws message (immutable).

    The rules are graphql-ws's `validateMessage`: connection_init, connection_ack, ping and pong
    take an optional object payload and no id; subscribe, next, error and complete need a
    non-empty string id; subscribe needs a payload object with a string `query` (and
    `operationName` a string or null, `variables` and `extensions` objects or null, when given);
    next needs an object payload; error needs a non-empty list of objects, each with a string
    `message`. Invalid messages raise ValueError naming the property and the JSON type found,
    e.g. `"subscribe" message expects the 'query' property in the payload to be a string, but
    got number`. Properties outside the protocol are dropped.
    """

    def __new__(cls, type: str, id: str | None = None, payload: Any = None) -> PyGraphQLMessage:
        """Builds and validates a message. ValueError for an invalid message, also for an `id`
        on a connection-level type or a `payload` on `complete`; TypeError for a payload that is
        not made of dict (str keys), list, tuple, str, int, float, bool and None."""
    @staticmethod
    def from_dict(data: dict[str, Any]) -> PyGraphQLMessage:
        """Validates a message given as a dict, e.g. from `json.loads`. Same errors as the
        constructor, except that a stray `id` or `payload` is dropped rather than refused."""
    @staticmethod
    def parse(text: str | bytes) -> PyGraphQLMessage:
        """Parses and validates a WebSocket frame: text, or bytes holding UTF-8 JSON. Raises
        ValueError for anything that is not a valid message (`Message is not valid JSON: ...`
        for bad JSON) and TypeError for an argument that is neither str nor bytes."""
    @property
    def type(self) -> GraphQLMessageType: ...
    @property
    def id(self) -> str | None:
        """The operation id; None for connection_init, connection_ack, ping and pong."""
    @property
    def payload(self) -> Any:
        """The payload as Python objects (a new copy on each access), or None. Integers keep
        every digit; numbers with a fraction or exponent are floats."""
    def to_dict(self) -> dict[str, Any]:
        """`{"type": ...}` plus `"id"` and `"payload"` when present."""
    def to_json(self) -> str:
        """The message as compact JSON text, ready to send."""
    def subscribe_payload(self) -> PySubscriptionPayload:
        """The payload of a `subscribe` message (missing variables become an empty dict).
        ValueError for any other message type."""
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

# --- event bus configuration (rust-core/src/subscriptions/bus/config.rs) --------------------

#: The kind of event bus.
EventBusType = Literal["memory", "redis", "postgresql"]

@final
class PyEventBusConfig:
    """Which event bus carries subscription events (immutable, hashable).

    Built with `memory()`, `redis(...)` or `postgresql(...)`; the last two validate their
    input with the same parsers the bus clients use and raise ValueError when it is invalid.
    Passwords are replaced by `***` in error messages and in `repr()`.
    """

    @staticmethod
    def memory(history: int = 1000, history_seconds: float = 120.0) -> PyEventBusConfig:
        """In-process bus: a single worker. Keeps the last `history` events of each channel for
        at most `history_seconds`, for subscriptions that resume (`history=0`: none)."""
    @staticmethod
    def redis(
        url: str,
        consumer_group: str = "fraiseql-subscriptions",
        tls_ca_file: str | os.PathLike[str] | None = None,
    ) -> PyEventBusConfig:
        """Redis bus. `url` is a redis://, rediss://, unix:// or redis+unix:// URL (redis:// and
        rediss:// need a host), e.g. `redis://:password@localhost:6379/0`; `consumer_group`
        must not be empty. A rediss:// server is verified against the system's trusted roots,
        or against the CA certificates of the PEM file `tls_ca_file` (read now: ValueError when
        it is missing or holds no certificate); `rediss://...#insecure` skips verification."""
    @staticmethod
    def postgresql(
        connection_string: str,
        channel_prefix: str = "fraiseql",
        retention: float | timedelta = 3600.0,
    ) -> PyEventBusConfig:
        """PostgreSQL bus. `connection_string` is a postgresql:// or postgres:// URL or a libpq
        key=value DSN such as `host=127.0.0.1 dbname=app user=app`, and must name a host.
        TLS follows libpq: `sslmode` (disable, prefer (the default), require, verify-ca,
        verify-full) and `sslrootcert` (a PEM file, read now, or `system`).
        `channel_prefix` names the events table and SQL functions (`{prefix}_events`,
        `{prefix}_publish`): two applications on one database stay apart with different
        prefixes. `retention` (seconds or a timedelta, positive) is how long events stay in the
        table: the longest outage a process recovers from without losing events."""
    @property
    def bus_type(self) -> EventBusType: ...
    @property
    def url(self) -> str | None:
        """The Redis URL as given (password included); None for other buses."""
    @property
    def consumer_group(self) -> str | None:
        """The Redis consumer group; None for other buses."""
    @property
    def connection_string(self) -> str | None:
        """The PostgreSQL connection string as given (password included); None for other
        buses."""
    @property
    def channel_prefix(self) -> str | None:
        """The PostgreSQL table and function prefix; None for other buses."""
    @property
    def tls_ca_file(self) -> str | None:
        """The Redis CA file; None when not given and for other buses."""
    @property
    def retention(self) -> float | None:
        """The PostgreSQL retention in seconds; None for other buses."""
    @property
    def history(self) -> int | None:
        """Events the in-memory bus keeps per channel; None for other buses."""
    @property
    def history_seconds(self) -> float | None:
        """Seconds the in-memory bus keeps an event; None for other buses."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
