"""`SubscriptionManager`: the schema, the Rust executor, and the connections served by it.

The protocol handler asks it to prepare operations (graphql-core: parse, validate, coerce),
register subscriptions (in Rust), execute queries, and drain frames; the application asks it to
publish events.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError

from fraiseql_core_rs import PyEvent, PyEventBusConfig, PySubscriptionExecutor

from .context import ConnectionContext
from .conversion import args_to_json, from_graphql_args, to_jsonable
from .decorator import Scope, SubscriptionField, default_registry
from .error_formatting import ErrorFormatter, FormatError
from .schema import PreparedOperation, SubscriptionSchema

if TYPE_CHECKING:
    from .http_abstraction.protocol import GraphQLTransportWSHandler

logger = logging.getLogger("fraiseql_fastapi")


class CoreResolver:
    """What the Rust core calls, once per event for each group of subscriptions sharing a
    field, its arguments and its scope: turns the arguments into Python values, calls the user's
    resolver and turns its result into JSON-compatible data. An exception goes back to the core,
    which sends that event's subscribers a field error formatted by the manager's
    `ErrorFormatter` (masked, logged) and keeps their subscriptions."""

    def __init__(self, field: SubscriptionField) -> None:
        self.field = field

    def __call__(self, event: PyEvent, arguments: Mapping[str, Any], context: Any) -> Any:
        result = self.field.call(event, from_graphql_args(self.field, arguments), context)
        if inspect.isawaitable(result):
            return self._finish(result)
        return to_jsonable(result, self.field.return_annotation)

    async def _finish(self, pending: Any) -> Any:
        return to_jsonable(await pending, self.field.return_annotation)


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
    """

    def __init__(
        self,
        bus: PyEventBusConfig | None = None,
        *,
        subscriptions: Iterable[SubscriptionField] | None = None,
        max_queue: int = 1000,
        overflow_policy: str = "lag",
        mask_errors: bool = True,
        format_error: FormatError | None = None,
    ) -> None:
        fields = list(default_registry.fields if subscriptions is None else subscriptions)
        self.schema = SubscriptionSchema(fields)
        self.errors = ErrorFormatter(mask_errors=mask_errors, format_error=format_error)
        self.executor = PySubscriptionExecutor(
            bus,
            max_queue=max_queue,
            overflow_policy=overflow_policy,  # type: ignore[arg-type]
            schema=self.schema.core_type_info(),
            format_error=self.errors.resolver_error,
        )
        self._resolvers = {field.name: CoreResolver(field) for field in fields}
        self._handlers: dict[str, GraphQLTransportWSHandler] = {}
        self._previous_signal_handlers: dict[int, Any] = {}
        #: Connections closed, by close code (ours or the client's).
        self.connections_closed: collections.Counter[int] = collections.Counter()

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

    def print_schema(self) -> str:
        """The schema in SDL."""
        return self.schema.print_schema()

    def get_metrics(self) -> dict[str, Any]:
        """The core's counters and gauges, plus `subscribers` (active subscriptions) and
        `connections_closed` (a dict: close code -> connections closed with it)."""
        metrics: dict[str, Any] = dict(self.executor.get_metrics())
        metrics["subscribers"] = metrics["active_subscriptions"]
        metrics["connections_closed"] = dict(self.connections_closed)
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
            fd = self.executor.bus_fd
            if fd is not None:
                loop.add_reader(fd, self._on_bus_events)

    async def install_sql(self) -> None:
        """PostgreSQL bus: creates the events table and the `fraiseql_publish(channel,
        event_type, data, tenant_id, user_id)` SQL function that lets any transaction or
        trigger publish (delivered only if it commits). Idempotent; `start()` does it too."""
        if self.executor.config.bus_type != "postgresql":
            raise RuntimeError("install_sql() is for the PostgreSQL bus")
        await asyncio.get_running_loop().run_in_executor(None, self.executor.start_bus)

    async def stop(self, timeout: float = 5.0) -> None:
        """Completes every operation and closes every connection with 1001."""
        for signum, previous in self._previous_signal_handlers.items():
            signal.signal(signum, previous)
        self._previous_signal_handlers.clear()
        handlers = list(self._handlers.values())
        if handlers:
            await asyncio.wait(
                [asyncio.ensure_future(handler.shutdown()) for handler in handlers],
                timeout=timeout,
            )
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

    # ----- protocol handler API -----------------------------------------------------------------

    def prepare(
        self, query: str, operation_name: str | None, variables: Mapping[str, Any] | None
    ) -> PreparedOperation | list[GraphQLError]:
        """Parses, validates and coerces an operation (cached by document text)."""
        return self.schema.prepare(query, operation_name, variables)

    async def execute(self, prepared: PreparedOperation, context: ConnectionContext) -> Any:
        """Executes a query or mutation; returns the result in its wire form, with errors
        masked and formatted as for subscriptions."""
        result = await self.schema.execute(prepared, context)
        formatted: dict[str, Any] = {"data": result.data}
        if result.errors:
            self.errors.log_unexpected(result.errors)
            formatted["errors"] = self.errors.format_all(result.errors)
        if result.extensions is not None:
            formatted["extensions"] = result.extensions
        return formatted

    def open_connection(self, handler: GraphQLTransportWSHandler) -> str:
        """Registers a connection with the core; its handler is woken when frames are queued."""
        connection_id = uuid.uuid4().hex
        self.executor.open_connection(connection_id, handler.frames_ready.set)
        self._handlers[connection_id] = handler
        return connection_id

    def close_connection(self, connection_id: str) -> None:
        """Forgets a connection and everything about it, in Rust and here."""
        self._handlers.pop(connection_id, None)
        with contextlib.suppress(KeyError):
            self.executor.remove_connection(connection_id)

    def connection_closed(self, code: int) -> None:
        """Counts a connection that closed with `code` (by us or by the client)."""
        self.connections_closed[code] += 1

    def drain(self, connection_id: str) -> list[str]:
        """The frames queued for a connection (none once it is gone)."""
        try:
            return self.executor.drain(connection_id)
        except KeyError:
            return []

    def subscribe(
        self,
        connection_id: str,
        op_id: str,
        prepared: PreparedOperation,
        context: ConnectionContext,
    ) -> list[GraphQLError] | None:
        """Registers a prepared subscription in the core; returns errors if it is refused."""
        field = prepared.field
        if field is None:
            return [GraphQLError("Not a subscription")]
        denied = _authorization_error(field, context)
        if denied:
            return [GraphQLError(denied, extensions={"code": "FORBIDDEN"})]
        assert prepared.args is not None and prepared.resolver_args is not None
        try:
            self.executor.register_subscription(
                connection_id,
                _subscription_key(connection_id, op_id),
                prepared.query,
                prepared.operation_name,
                variables=prepared.variables_json,
                user_id=context.user_id,
                tenant_id=context.tenant_id,
                operation_id=op_id,
                channels=field.channels(prepared.resolver_args),
                event_types=field.event_types,
                resolver=self._resolvers[field.name],
                resolver_scope=_sharing_scope(field),
                context=context,
                filters=field.core_filters(),
                arguments=args_to_json(field, prepared.args),
            )
        except PermissionError as error:
            return [GraphQLError(str(error), extensions={"code": "FORBIDDEN"})]
        except (ValueError, TypeError) as error:
            return [GraphQLError(str(error))]
        return None

    def is_subscribed(self, connection_id: str, op_id: str) -> bool:
        """True while the subscription is live in the core."""
        return self.executor.is_active(_subscription_key(connection_id, op_id))

    def live_subscriptions(self, connection_id: str) -> int:
        """How many subscriptions of the connection are live in the core (constant time)."""
        try:
            return self.executor.connection_active(connection_id)
        except KeyError:
            return 0

    def complete(self, connection_id: str, op_id: str) -> None:
        """Ends a subscription (client `complete`); unknown ids are ignored."""
        with contextlib.suppress(KeyError):
            self.executor.complete_subscription(_subscription_key(connection_id, op_id))


def _subscription_key(connection_id: str, op_id: str) -> str:
    # Operation ids are chosen by clients and unique per connection only.
    return f"{connection_id}/{op_id}"


def _sharing_scope(field: SubscriptionField) -> Scope:
    """A resolver that does not take `context` gives everyone with the same arguments the same
    result, so one call per event serves them all; otherwise the declared scope applies."""
    return field.scope if field.wants_context else "global"


def _authorization_error(field: SubscriptionField, context: ConnectionContext) -> str | None:
    if field.roles and not context.roles.intersection(field.roles):
        return f'Subscription "{field.name}" requires one of the roles: {", ".join(field.roles)}'
    missing = [p for p in field.permissions if p not in context.permissions]
    if missing:
        return f'Subscription "{field.name}" requires the permissions: {", ".join(missing)}'
    return None
