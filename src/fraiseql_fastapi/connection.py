"""`Connection`: one client connection as the manager serves it, whatever its protocol and
transport: who it acts for, its subscriptions in the Rust core, the frames queued for it, and
how it closed. Transports get one from `SubscriptionManager.connect` and protocols drive it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError

from fraiseql_core_rs import PySubscriptionExecutor

from .context import ConnectionContext
from .conversion import args_to_json
from .error_formatting import ErrorFormatter
from .field import Scope, SubscriptionField
from .limits import Limit, Limits, Quotas
from .resolvers import StreamResolver, run_stream
from .resume import NO_RESUME, resume_request
from .schema import PreparedOperation, SubscriptionSchema

__all__ = ["Connection", "ConnectionServices", "Envelope"]

#: How a connection's frames are wrapped, per protocol (see `open_connection` in the core).
Envelope = str


@dataclass(eq=False)
class ConnectionServices:
    """What the connections of one manager share: the core, the schema, the error formatter,
    the resolvers the core calls, the live connections, the close-code counts, and the limits
    with their refusal counts."""

    executor: PySubscriptionExecutor
    schema: SubscriptionSchema
    errors: ErrorFormatter
    resolvers: Mapping[str, Callable[..., Any]]
    live: set[Connection] = field(default_factory=set)
    #: The running generators of stream subscriptions (awaited on shutdown).
    streams: set[asyncio.Task[None]] = field(default_factory=set)
    #: Connections closed, by close code (ours or the client's).
    closed_codes: collections.Counter[int] = field(default_factory=collections.Counter)
    #: Refusals by a limit, by its name (`fraiseql_fastapi.limits.Limit`).
    limited: collections.Counter[str] = field(default_factory=collections.Counter)
    limits: Limits = field(default_factory=Limits)
    #: Every subscription's events carry cursors (`SubscriptionManager(positions=True)`).
    positions: bool = False
    quotas: Quotas = field(init=False)

    def __post_init__(self) -> None:
        self.quotas = Quotas(self.limits, self.limited)


class Connection:
    """A client connection: subscribe, complete, drain, live count, close, and the security
    context `on_connect` established. Operation ids are the client's, unique per connection.

    `on_shutdown`, set by the transport, is awaited when the server shuts down (it should
    complete every operation and close, as its protocol says)."""

    def __init__(
        self,
        services: ConnectionServices,
        *,
        envelope: Envelope = "graphql-transport-ws",
        on_frames: Callable[[], None] | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.context = ConnectionContext()
        self.on_shutdown: Callable[[], Awaitable[None]] | None = None
        self._services = services
        self._executor = services.executor
        self._closed = False
        #: The generators of its stream subscriptions, by operation id.
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._executor.open_connection(self.id, on_frames, envelope=envelope)  # type: ignore[arg-type]
        services.live.add(self)

    @property
    def is_closed(self) -> bool:
        """True once `close` has been called."""
        return self._closed

    def admit(self, context: ConnectionContext) -> Limit | None:
        """The connection acts for `context` from now on, if its user's and tenant's quotas
        of connections allow (once per connection: a refreshed context keeps the identity);
        the limit it would pass otherwise."""
        refused = self._services.quotas.admit(self, context)
        if refused is None:
            self.context = context
        return refused

    def count_limited(self, limit: Limit) -> None:
        """Counts a refusal by `limit` (see `SubscriptionManager.get_metrics`)."""
        self._services.limited[limit.value] += 1

    @property
    def errors(self) -> ErrorFormatter:
        """How errors are formatted (masked, logged) for clients."""
        return self._services.errors

    # ----- operations ---------------------------------------------------------------------------

    def prepare(
        self, query: str, operation_name: str | None, variables: Mapping[str, Any] | None
    ) -> PreparedOperation | list[GraphQLError]:
        """Parses, validates and coerces an operation (cached by document text)."""
        return self._services.schema.prepare(query, operation_name, variables)

    async def execute(self, prepared: PreparedOperation) -> dict[str, Any]:
        """Executes a query or mutation as this connection; the result in its wire form."""
        return await execute(self._services, prepared, self.context)

    def subscribe(
        self,
        op_id: str,
        prepared: PreparedOperation,
        extensions: Mapping[str, Any] | None = None,
        *,
        last_event_id: str | None = None,
    ) -> list[GraphQLError] | None:
        """Registers a prepared subscription in the core; returns errors if it is refused.
        `extensions` (of the subscribe payload) may ask for cursors or a resume (see
        `fraiseql_fastapi.resume`), as may an SSE request's `last_event_id`."""
        field = prepared.field
        if field is None:
            return [GraphQLError("Not a subscription")]
        resume = resume_request(
            extensions, positions=self._services.positions, last_event_id=last_event_id
        )
        if isinstance(resume, GraphQLError):
            return [resume]
        if field.is_stream and resume.positions:
            resume = NO_RESUME  # its events come from its own generator: no history
        context = self.context
        denied = _authorization_error(field, context)
        if denied:
            return [GraphQLError(denied, extensions={"code": "FORBIDDEN"})]
        over_quota = self._services.quotas.subscription_refused(context)
        if over_quota is not None:
            return [over_quota]
        assert prepared.args is not None and prepared.resolver_args is not None
        stream = StreamResolver(field) if field.is_stream else None
        try:
            # A stream's channel is private: only its own generator publishes on it.
            channels = (
                [f"fraiseql:stream:{uuid.uuid4().hex}"]
                if stream is not None
                else field.channels(prepared.resolver_args)
            )
            self._executor.register_subscription(
                self.id,
                self._key(op_id),
                prepared.query,
                prepared.operation_name,
                variables=prepared.variables_json,
                user_id=context.user_id,
                tenant_id=context.tenant_id,
                operation_id=op_id,
                channels=channels,
                event_types=field.event_types,
                resolver=stream or self._services.resolvers[field.name],
                resolver_scope="subscription" if stream else _sharing_scope(field),
                context=context,
                filters=field.core_filters(),
                arguments=args_to_json(field, prepared.args),
                resolver_arguments=prepared.resolver_args,
                conflate=field.conflate,
                max_rate=field.max_rate,
                positions=resume.positions,
                resume_from=resume.resume_from,
            )
        except PermissionError as error:
            return [GraphQLError(str(error), extensions={"code": "FORBIDDEN"})]
        except (ValueError, TypeError) as error:
            return [GraphQLError(str(error))]
        if stream is not None:
            self._start_stream(op_id, channels[0], stream, prepared.resolver_args)
        return None

    def _start_stream(
        self, op_id: str, channel: str, resolver: StreamResolver, args: Mapping[str, Any]
    ) -> None:
        run = run_stream(self._executor, self._key(op_id), channel, resolver, args, self.context)
        task = asyncio.get_running_loop().create_task(run)
        self._streams[op_id] = task
        self._services.streams.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._services.streams.discard(done)
            if self._streams.get(op_id) is done:
                del self._streams[op_id]

        task.add_done_callback(finished)

    def complete(self, op_id: str) -> None:
        """Ends a subscription (its queued frames are dropped, its generator if it has one is
        closed); unknown ids are ignored."""
        stream = self._streams.pop(op_id, None)
        if stream is not None:
            stream.cancel()
        with contextlib.suppress(KeyError):
            self._executor.complete_subscription(self._key(op_id))

    def is_live(self, op_id: str) -> bool:
        """True while the subscription is live in the core."""
        return self._executor.is_active(self._key(op_id))

    @property
    def live_count(self) -> int:
        """How many of its subscriptions are live in the core (constant time)."""
        try:
            return self._executor.connection_active(self.id)
        except KeyError:
            return 0

    def drain(self) -> list[str]:
        """The frames queued for it, ready to send (none once it is closed)."""
        try:
            return self._executor.drain(self.id)
        except KeyError:
            return []

    # ----- lifecycle ----------------------------------------------------------------------------

    def close(self, code: int) -> bool:
        """Counts the close with `code` and forgets everything about the connection, in the
        core and in the manager. Only the first call does anything; it returns True."""
        if self._closed:
            return False
        self._closed = True
        for stream in self._streams.values():
            stream.cancel()
        self._streams.clear()
        self._services.closed_codes[code] += 1
        self._services.live.discard(self)
        self._services.quotas.release(self)
        with contextlib.suppress(KeyError):
            self._executor.remove_connection(self.id)
        return True

    async def shutdown(self) -> None:
        """Server shutdown: asks the transport to end it (see `on_shutdown`)."""
        if self.on_shutdown is not None and not self._closed:
            await self.on_shutdown()

    def _key(self, op_id: str) -> str:
        # Operation ids are chosen by clients and unique per connection only.
        return f"{self.id}/{op_id}"


async def execute(
    services: ConnectionServices, prepared: PreparedOperation, context: ConnectionContext
) -> dict[str, Any]:
    """Executes a query or mutation; the result in its wire form, with errors masked and
    formatted as for subscriptions. Its `info.context` is the route's `context_getter`'s value
    when there is one, else the connection's `ConnectionContext`."""
    request_context = context.request_context
    result = await services.schema.execute(
        prepared, context if request_context is None else request_context
    )
    formatted: dict[str, Any] = {"data": result.data}
    if result.errors:
        services.errors.log_unexpected(result.errors)
        formatted["errors"] = services.errors.format_all(result.errors)
    if result.extensions is not None:
        formatted["extensions"] = result.extensions
    return formatted


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
