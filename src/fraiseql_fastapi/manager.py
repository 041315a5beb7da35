"""`SubscriptionManager`: the schema, the Rust executor, and the connections served by it.

Transports ask it for a `Connection` (`connect`), which their protocol drives (subscribe,
complete, drain, close); HTTP asks it to prepare and execute queries; the application asks it
to publish events.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from graphql import GraphQLError

from fraiseql_core_rs import PyEventBusConfig, PySubscriptionExecutor

from .connection import Connection, ConnectionServices, Envelope, execute
from .context import ConnectionContext
from .conversion import to_jsonable
from .error_formatting import ErrorFormatter, FormatError
from .field import SubscriptionField, default_registry
from .limits import Limits
from .resolvers import CoreResolver
from .schema import PreparedOperation, SubscriptionSchema

logger = logging.getLogger("fraiseql_fastapi")


class SubscriptionManager:
    """Serves the subscriptions declared with `@subscription` over an event bus.

    ```python
    manager = SubscriptionManager(EventBusConfig.memory())
    app = FastAPI(lifespan=manager.lifespan)
    await manager.publish("room:42", {"id": "1", "room_id": "42", "text": "hi"},
                          event_type="messagePosted")
    ```

    A resolver that raises sends that event's subscribers a GraphQL field error, and their
    subscriptions go on. Its message is masked ("Internal server error", code
    INTERNAL_SERVER_ERROR) unless `mask_errors=False` (development) or the exception is a
    `graphql.GraphQLError` raised on purpose; the exception is logged with its traceback on the
    `fraiseql_fastapi` logger. `format_error(error) -> dict` may rewrite every error sent.

    `schema` is the application's own GraphQL schema, if it has one (a graphql-core
    `GraphQLSchema`: Ariadne's `make_executable_schema(...)`, Strawberry's `schema._schema` or
    the Strawberry `Schema` itself): its queries and mutations are served on the same path,
    run by its own resolvers, and our subscriptions become its Subscription type. A type of
    ours with the name of one of its types must match it (startup fails naming both).
    `introspection=False` refuses introspection queries (`__schema`, `__type`), for
    production. `limits` bounds the size of documents and what each user and tenant may hold
    in this process (`fraiseql_fastapi.limits.Limits`; its defaults apply without it).
    """

    def __init__(
        self,
        bus: PyEventBusConfig | None = None,
        *,
        schema: object = None,
        subscriptions: Iterable[SubscriptionField] | None = None,
        introspection: bool = True,
        max_queue: int = 1000,
        overflow_policy: str = "lag",
        mask_errors: bool = True,
        format_error: FormatError | None = None,
        limits: Limits | None = None,
        positions: bool = False,
    ) -> None:
        fields = list(default_registry.fields if subscriptions is None else subscriptions)
        limits = limits or Limits()
        limited: collections.Counter[str] = collections.Counter()
        self.schema = SubscriptionSchema(
            fields,
            schema=schema,
            introspection=introspection,
            max_query_depth=limits.max_query_depth,
            max_query_fields=limits.max_query_fields,
            limited=limited,
        )
        self.errors = ErrorFormatter(mask_errors=mask_errors, format_error=format_error)
        type_info = self.schema.core_type_info()
        self.executor = PySubscriptionExecutor(
            bus,
            max_queue=max_queue,
            overflow_policy=overflow_policy,  # type: ignore[arg-type]
            # No subscriptions (an application that only publishes, or installs the SQL): there
            # is nothing to describe to the core.
            schema=type_info if type_info["subscription_type"] is not None else None,
            format_error=self.errors.resolver_error,
        )
        self._services = ConnectionServices(
            executor=self.executor,
            schema=self.schema,
            errors=self.errors,
            resolvers={field.name: CoreResolver(field) for field in fields},
            limited=limited,
            limits=limits,
            positions=positions,
        )
        self._previous_signal_handlers: dict[int, Any] = {}
        #: Between `start()` and `stop()`: the bus is connected and read.
        self._serving_bus = False

    @property
    def connections_closed(self) -> collections.Counter[int]:
        """Connections closed, by close code (ours or the client's)."""
        return self._services.closed_codes

    @property
    def connections(self) -> frozenset[Connection]:
        """The open connections."""
        return frozenset(self._services.live)

    # ----- application API ----------------------------------------------------------------------

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        event_type: str = "event",
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> int:
        """Publishes an event on `channel`; returns how many subscriptions got a `next` frame
        once every resolver has run. `tenant_id` / `user_id` restrict it to that tenant / user.

        It always yields to the event loop once, so that a loop of publishes lets the
        connections' sender tasks run instead of filling their queues (which would end slow
        subscriptions with EVENTS_LAGGED)."""
        try:
            # The core converts plain JSON-like data itself, without a walk in Python.
            pending = self.executor.publish_event_async(
                event_type, channel, data, tenant_id, user_id
            )
        except TypeError:  # models, dataclasses, enums, datetimes...: convert them first
            pending = self.executor.publish_event_async(
                event_type, channel, to_jsonable(data), tenant_id, user_id
            )
        delivered = await pending
        await asyncio.sleep(0)
        return delivered

    def complete_channel(self, channel: str) -> int:
        """Ends every subscription on `channel` in this process (an auction closes, a game
        ends): each gets the events already queued for it, then `complete`. Returns how many.
        With a bus, other processes keep theirs: call it in each (e.g. on an event of your own).
        """
        return self.executor.complete_channel(channel)

    def print_schema(self) -> str:
        """The schema in SDL."""
        return self.schema.print_schema()

    def get_metrics(self) -> dict[str, Any]:
        """The core's counters and gauges, plus `subscribers` (active subscriptions) and
        `connections_closed` (a dict: close code -> connections closed with it) and `limited`
        (a dict: limit name -> requests refused by it; see `fraiseql_fastapi.limits`)."""
        metrics: dict[str, Any] = dict(self.executor.get_metrics())
        metrics["subscribers"] = metrics["active_subscriptions"]
        metrics["connections_closed"] = dict(self.connections_closed)
        metrics["limited"] = dict(self._services.limited)
        return metrics

    async def start(self) -> None:
        """Starts serving. In the main thread it also chains the server's SIGINT/SIGTERM
        handlers, so that on shutdown clients get `complete` and a 1001 close from us before the
        server (uvicorn closes WebSockets with 1012 before the lifespan shutdown) drops them."""
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            self._chain_signal_handlers(loop)
        if self.executor.config.bus_type != "memory":
            # Connecting blocks (and fails here, naming the server): not on the event loop.
            await loop.run_in_executor(None, self.executor.start_bus)
            self._serving_bus = True
            fd = self.executor.bus_fd
            if fd is not None:
                loop.add_reader(fd, self._on_bus_events)

    async def install_sql(self) -> None:
        """PostgreSQL bus: creates the `{channel_prefix}_events` table and the
        `{channel_prefix}_publish(channel, event_type, data, tenant_id, user_id)` SQL function
        (`fraiseql_publish` with the default prefix) that lets any transaction or trigger
        publish (delivered only if it commits). Idempotent; `start()` does it too. A manager
        not started (a migration script) is left as it was: disconnected."""
        if self.executor.config.bus_type != "postgresql":
            raise RuntimeError("install_sql() is for the PostgreSQL bus")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.executor.start_bus)
        if not self._serving_bus:
            await loop.run_in_executor(None, self.executor.stop_bus)

    async def stop(self, timeout: float = 5.0) -> None:
        """Completes every operation and closes every connection with 1001."""
        for signum, previous in self._previous_signal_handlers.items():
            signal.signal(signum, previous)
        self._previous_signal_handlers.clear()
        connections = list(self._services.live)
        if connections:
            await asyncio.wait(
                [asyncio.ensure_future(connection.shutdown()) for connection in connections],
                timeout=timeout,
            )
        streams = list(self._services.streams)
        for stream in streams:  # left by connections that did not close in time
            stream.cancel()
        if streams:  # so that every generator's `finally` runs before the loop stops
            await asyncio.wait(streams, timeout=timeout)
        self._serving_bus = False
        fd = self.executor.bus_fd
        if fd is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(fd)
            await loop.run_in_executor(None, self.executor.stop_bus)

    def _on_bus_events(self) -> None:
        """The bus has events for us: dispatch them (in order) on the event loop."""
        try:
            self.executor.process_bus_events()
        except Exception:
            logger.exception("dispatching bus events failed")

    def _chain_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if not callable(previous):
                continue  # default or ignored: the process is not a server we can hand over to

            def on_signal(number: int, frame: Any, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self._stop_then, previous, number, frame)

            self._previous_signal_handlers[signum] = previous
            signal.signal(signum, on_signal)

    def _stop_then(self, previous: Any, number: int, frame: Any) -> None:
        task = asyncio.ensure_future(self.stop())
        task.add_done_callback(lambda _: previous(number, frame))

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """For `FastAPI(lifespan=manager.lifespan)` and `Starlette(lifespan=...)`."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # ----- transport API ------------------------------------------------------------------------

    def connect(
        self,
        *,
        envelope: Envelope = "graphql-transport-ws",
        on_frames: Callable[[], None] | None = None,
    ) -> Connection:
        """A new connection, registered with the core: frames are wrapped in `envelope` (its
        protocol's), and `on_frames()` is called on the loop when frames are queued for it."""
        return Connection(self._services, envelope=envelope, on_frames=on_frames)

    def prepare(
        self, query: str, operation_name: str | None, variables: Mapping[str, Any] | None
    ) -> PreparedOperation | list[GraphQLError]:
        """Parses, validates and coerces an operation (cached by document text)."""
        return self.schema.prepare(query, operation_name, variables)

    async def execute(
        self, prepared: PreparedOperation, context: ConnectionContext | None = None
    ) -> dict[str, Any]:
        """Executes a query or mutation (as `context`, default anonymous); returns the result in
        its wire form, with errors masked and formatted as for subscriptions."""
        return await execute(self._services, prepared, context or ConnectionContext())
