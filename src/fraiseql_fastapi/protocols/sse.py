"""GraphQL over Server-Sent Events (graphql-sse's PROTOCOL.md), server side: what a request is
(`decide`, from its method, headers, query and body alone), the status codes, the single
connection mode's streams and their tokens (bound to whoever reserved them), and the records
sent on a stream. Its transport (`http_abstraction.sse`) reads requests and writes responses;
the core writes the `next` records of subscriptions itself (envelopes `sse-distinct` and
`sse-single`), so this module writes only those of queries, refusals and completions.

- Distinct connections mode: a GET (query string) or POST (JSON) with `Accept:
  text/event-stream` is one operation and its own stream: `next` records, then `complete`.
  Errors found before execution (syntax, validation, variables, refusals) are a `next` with
  `errors`, then `complete`, on the accepted stream, as PROTOCOL.md requires.
- Single connection mode: PUT reserves a stream (201, the token as text/plain); a GET with
  `Accept: text/event-stream` and the token (header `X-GraphQL-Event-Stream-Token` or query
  `token`) opens it, once (409 while it is open); POSTs (or GETs) with the token run
  operations named by `extensions.operationId` (202; their results come on the stream; a
  document that does not validate is a 400, as the reference server answers); a DELETE with
  `?operationId=` stops one (200). A reservation not opened within
  `ProtocolOptions.connection_init_timeout` is dropped; a stream whose client goes away is
  dropped with everything on it.
- `on_connect(None, request)` decides every request (PUT, GET, POST, DELETE) before anything
  is streamed; a refusal (False, or PermissionError raised) is 403. A token serves only the
  user and tenant that reserved it (403 for anyone else), and each operation runs as its own
  request's authentication. Credentials with an `expires_at` that has passed are a 403
  ("Token expired"); a stream ends, without `complete`, when those of the latest request on it
  expire (the client reconnects with new ones; in the single connection mode each request
  with new credentials extends it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson
from graphql import GraphQLError, OperationType, get_operation_ast, parse

from ..connection import Connection, Envelope
from ..context import ConnectionContext
from ..error_formatting import INTERNAL_ERROR_EXTENSIONS, MASKED_MESSAGE
from ..limits import RateLimit
from ..schema import PreparedOperation
from .common import (
    OnConnect,
    Operations,
    ProtocolOptions,
    authenticate,
    rate_limit,
    too_many_operations,
)

if TYPE_CHECKING:
    from ..manager import SubscriptionManager

__all__ = [
    "EVENT_STREAM",
    "KEEPALIVE",
    "TOKEN_HEADER",
    "TOKEN_QUERY",
    "Decision",
    "Distinct",
    "Execute",
    "Listen",
    "Reply",
    "RequestParams",
    "Reserve",
    "SSEProtocol",
    "SSERequest",
    "Stop",
    "Stream",
    "StreamEnd",
    "StreamOutput",
    "complete_record",
    "decide",
    "next_record",
    "wants_sse",
]

logger = logging.getLogger("fraiseql_fastapi")

#: The header and query parameter that carry a single connection mode stream's token.
TOKEN_HEADER: Final = "x-graphql-event-stream-token"
TOKEN_QUERY: Final = "token"
#: The media type of an event stream.
EVENT_STREAM: Final = "text/event-stream"
#: A comment line: keeps the stream alive through proxies, ignored by clients.
KEEPALIVE: Final = ":\n\n"
#: The methods this protocol answers on the GraphQL path.
ALLOW: Final = "GET, POST, PUT, DELETE"
#: The core's envelopes of the two modes.
DISTINCT_ENVELOPE: Final[Envelope] = "sse-distinct"
SINGLE_ENVELOPE: Final[Envelope] = "sse-single"
#: The operation id of a distinct connection's one operation (never written on its stream).
DISTINCT_OPERATION: Final = ""

_JSON: Final = "application/json; charset=utf-8"
_TEXT: Final = "text/plain; charset=utf-8"
#: What a PUT (the token, text/plain) and a POST (JSON, or nothing) may ask to receive.
_PUT_ACCEPTS: Final = frozenset({"*/*", "text/*", "text/plain"})
_POST_ACCEPTS: Final = frozenset(
    {"*/*", "application/*", "application/json", "application/graphql-response+json"}
)


class StreamEnd(IntEnum):
    """How a stream ended, counted in the manager's `connections_closed` under the WebSocket
    close code of the same meaning."""

    #: Its operation completed (distinct mode), or the client closed it, which is how a client
    #: ends a stream in this protocol.
    NORMAL = 1000
    #: The server shut down (every operation got `complete` first).
    GOING_AWAY = 1001
    #: The credentials it was opened with expired (`ConnectionContext.expires_at`).
    TOKEN_EXPIRED = 4403
    #: A reservation that was never opened, dropped after `connection_init_timeout`.
    RESERVATION_TIMEOUT = 4408
    #: Refused: past its user's or tenant's quota of connections (a 429, never opened).
    TOO_MANY_REQUESTS = 4429
    #: Ended: its client kept posting operations past the rate it was refused at.
    POLICY_VIOLATION = 1008
    #: The transport failed while serving it.
    INTERNAL_SERVER_ERROR = 4500


# ----- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SSERequest:
    """What `decide` reads of an HTTP request: header names in lower case, the query string's
    parameters, and the body (POST only; the transport reads at most one byte past
    `max_message_size`)."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class RequestParams:
    """A GraphQL request, as GraphQL over HTTP defines it."""

    query: str
    operation_name: str | None = None
    variables: Mapping[str, Any] | None = None
    extensions: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Reply:
    """An HTTP response that is not a stream: a status, a body and its type, and `Allow` for a
    405."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    allow: str | None = None

    @classmethod
    def error(cls, status: int, message: str, *, allow: str | None = None) -> Reply:
        """A GraphQL-over-HTTP style error: `{"errors": [{"message": ...}]}`."""
        return cls.errors(status, [{"message": message}], allow=allow)

    @classmethod
    def errors(
        cls, status: int, errors: list[Mapping[str, Any]], *, allow: str | None = None
    ) -> Reply:
        """`{"errors": errors}` as JSON."""
        return cls(status, orjson.dumps({"errors": errors}), _JSON, allow)

    @classmethod
    def text(cls, status: int, text: str) -> Reply:
        """A plain text body (a reservation's token)."""
        return cls(status, text.encode(), _TEXT)


#: A stream refused: its user or tenant holds as many connections as `Limits` allows.
TOO_MANY_CONNECTIONS: Final = Reply.error(429, "Too many connections")


@dataclass(frozen=True)
class Distinct:
    """Distinct connections mode: serve one operation on a stream of its own; a browser that
    reconnects sends the id of the last event it got (`Last-Event-ID`: its cursor)."""

    params: RequestParams
    last_event_id: str | None = None


@dataclass(frozen=True)
class Reserve:
    """PUT: reserve a stream; `offered` is a token the client sent along (a 409 if it names a
    stream that exists; it is never adopted, tokens are ours)."""

    offered: str | None


@dataclass(frozen=True)
class Listen:
    """GET with the token and `Accept: text/event-stream`: open the reserved stream."""

    token: str


@dataclass(frozen=True)
class Execute:
    """POST (or GET) with the token: run an operation whose results go on the stream."""

    token: str
    params: RequestParams
    operation_id: str


@dataclass(frozen=True)
class Stop:
    """DELETE with the token: stop an operation of the stream."""

    token: str
    operation_id: str


#: What to do with a request: answer it at once (`Reply`), or an action that needs the
#: application (authentication, the schema, the stream registry).
Decision = Reply | Distinct | Reserve | Listen | Execute | Stop


def _media_ranges(accept: str | None) -> set[str]:
    """The media ranges of an Accept header (lower case, without parameters), except those
    with q=0."""
    ranges = set()
    for part in (accept or "").split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        if media and not any(_is_q_zero(param) for param in params):
            ranges.add(media)
    return ranges


def _is_q_zero(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return False
    try:
        return float(value) == 0
    except ValueError:
        return False


def _token(request: SSERequest) -> str | None:
    return request.headers.get(TOKEN_HEADER) or request.query.get(TOKEN_QUERY) or None


def wants_sse(
    method: str, headers: Mapping[str, str], query: Mapping[str, str], options: ProtocolOptions
) -> bool:
    """True when a request on the GraphQL path is this protocol's (so the transport reads its
    body and serves it); False leaves it to plain GraphQL over HTTP. PUT, DELETE and requests
    asking for an event stream are ours even when SSE is off (they get 405 / 406); a token
    makes a GET or POST ours only when it is on."""
    if method in ("PUT", "DELETE") or EVENT_STREAM in _media_ranges(headers.get("accept")):
        return True
    return options.sse and bool(headers.get(TOKEN_HEADER) or query.get(TOKEN_QUERY))


def decide(request: SSERequest, options: ProtocolOptions) -> Decision | None:
    """What to do with a request, from the request alone (no I/O, no state); None when it is
    not this protocol's (see `wants_sse`). The replies it gives: 400 (a request that is not a
    GraphQL request, no operation id), 404 (no token where one is needed), 405 (another
    method, a mutation over GET, PUT or DELETE while SSE is off), 406 (an Accept the answer
    cannot satisfy, or an event stream while SSE is off), 413 (a body over
    `max_message_size`), 415 (a POST that is not JSON)."""
    method = request.method
    if not wants_sse(method, request.headers, request.query, options):
        return None
    accepted = _media_ranges(request.headers.get("accept"))
    event_stream = EVENT_STREAM in accepted
    if not options.sse:
        if event_stream:
            return Reply.error(406, "Server-Sent Events are not served here")
        return Reply.error(405, "Method not allowed", allow="POST")
    token = _token(request)
    if method == "PUT":
        if accepted and not accepted & _PUT_ACCEPTS:
            return Reply(406)
        return Reserve(offered=token)
    if method == "DELETE":
        if token is None:
            return Reply.error(404, "Stream not found")
        operation_id = request.query.get("operationId")
        if not operation_id:
            return Reply.error(400, "Operation ID is missing")
        return Stop(token, operation_id)
    if method not in ("GET", "POST"):
        return Reply.error(405, "Method not allowed", allow=ALLOW)
    if event_stream and token is not None:
        return Listen(token)
    if not event_stream and accepted and not accepted & _POST_ACCEPTS:
        return Reply(406)
    params = _params(request, options)
    if isinstance(params, Reply):
        return params
    if method == "GET" and _is_mutation(params):
        return Reply.error(405, "Cannot perform mutations over GET", allow="POST")
    if token is None:
        return Distinct(params, request.headers.get("last-event-id") or None)
    operation_id = (params.extensions or {}).get("operationId")
    if isinstance(operation_id, int) and not isinstance(operation_id, bool):
        operation_id = str(operation_id)
    if not isinstance(operation_id, str) or not operation_id:
        return Reply.error(400, "Operation ID is missing")
    return Execute(token, params, operation_id)


def _params(request: SSERequest, options: ProtocolOptions) -> RequestParams | Reply:
    """The GraphQL request in a GET's query string or a POST's JSON body."""
    raw: Mapping[str, Any]
    if request.method == "GET":
        raw = dict(request.query)
        for name in ("variables", "extensions"):
            if raw.get(name):
                try:
                    raw[name] = orjson.loads(raw[name])
                except orjson.JSONDecodeError:
                    return Reply.error(400, f"'{name}' is not valid JSON")
            else:
                raw.pop(name, None)
    else:
        if "application/json" not in (request.headers.get("content-type") or "").lower():
            return Reply.error(415, "The body must be JSON (Content-Type: application/json)")
        if len(request.body) > options.max_message_size:
            return Reply.error(413, f"The body is over {options.max_message_size} bytes")
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return Reply.error(400, "The body must be JSON")
        if not isinstance(body, dict):
            return Reply.error(400, "The body must be a JSON object")
        raw = body
    query = raw.get("query")
    operation_name = raw.get("operationName")
    variables = raw.get("variables")
    extensions = raw.get("extensions")
    if not isinstance(query, str):
        return Reply.error(400, "Missing query" if query is None else "'query' must be a string")
    if operation_name is not None and not isinstance(operation_name, str):
        return Reply.error(400, "'operationName' must be a string")
    if variables is not None and not isinstance(variables, dict):
        return Reply.error(400, "'variables' must be an object")
    if extensions is not None and not isinstance(extensions, dict):
        return Reply.error(400, "'extensions' must be an object")
    return RequestParams(query, operation_name or None, variables, extensions)


def _is_mutation(params: RequestParams) -> bool:
    """True when the operation to run is a mutation (GraphQL over HTTP: never over GET). A
    document that does not parse is not one: its errors are reported as validation's."""
    try:
        document = parse(params.query)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, params.operation_name)
    return operation is not None and operation.operation == OperationType.MUTATION


# ----- records ----------------------------------------------------------------------------------


def next_record(operation_id: str | None, payload: Mapping[str, Any]) -> str:
    """A `next` record: the execution result alone (distinct mode, `operation_id` None) or
    `{"id", "payload"}` (single connection mode)."""
    data = payload if operation_id is None else {"id": operation_id, "payload": payload}
    return f"event: next\ndata: {orjson.dumps(data).decode()}\n\n"


def complete_record(operation_id: str | None) -> str:
    """A `complete` record. Its `data:` line is there even when empty, or EventSource would
    not dispatch the event."""
    if operation_id is None:
        return "event: complete\ndata: \n\n"
    return f"event: complete\ndata: {orjson.dumps({'id': operation_id}).decode()}\n\n"


# ----- streams ---------------------------------------------------------------------------------


class StreamOutput(Protocol):
    """What the transport gives a stream: the response it is written to. Messages and the end
    wait there until the stream is opened (single connection mode)."""

    @property
    def on_frames(self) -> Callable[[], None]:
        """Called by the core when it has queued frames for the stream's connection."""
        ...

    def send(self, text: str) -> None:
        """Queues a message, to go out after the frames the core has queued so far."""
        ...

    def end(self) -> None:
        """Ends the response once everything queued is sent."""
        ...

    async def ended(self) -> None:
        """Returns once the response is over (at once if it never started)."""
        ...


class Stream:
    """One event stream: its connection in the core and its operations; in the single
    connection mode also its token, the identity (user, tenant) it is bound to, and whether a
    client has it open."""

    def __init__(
        self,
        connection: Connection,
        output: StreamOutput,
        operations: Operations,
        *,
        token: str | None = None,
        identity: tuple[str | None, str | None] | None = None,
    ) -> None:
        self.connection = connection
        self.output = output
        self.operations = operations
        self.token = token
        self.identity = identity
        self.opened = False
        self.closed = False
        #: A distinct stream whose operation is a subscription (it ends when the core ends it).
        self.subscribed = False
        self.expiry: asyncio.TimerHandle | None = None
        #: Ends the stream when the credentials of its latest request expire.
        self.credentials_expiry: asyncio.TimerHandle | None = None

    @property
    def distinct(self) -> bool:
        """True for a distinct connection (one operation, no token)."""
        return self.token is None

    def done(self) -> bool:
        """True once a distinct stream's subscription was ended by the core: its last records
        (a `next` with the error, then `complete`) are queued, and the response ends after
        them. The transport asks before each drain."""
        return self.subscribed and not self.connection.is_live(DISTINCT_OPERATION)


def _identity(context: ConnectionContext) -> tuple[str | None, str | None]:
    return (context.user_id, context.tenant_id)


class SSEProtocol:
    """GraphQL over SSE on one route: the rules of each request, and the single connection
    mode's streams by token. The transport calls `handle` with what `decide` returned (a
    `Reply` to send, or a `Stream` to serve), `closed` once a stream's response is over, and
    the manager calls `shutdown` through each stream's connection."""

    def __init__(
        self,
        manager: SubscriptionManager,
        *,
        on_connect: OnConnect | None = None,
        options: ProtocolOptions | None = None,
    ) -> None:
        self.manager = manager
        self.on_connect = on_connect
        self.options = options or ProtocolOptions()
        #: The single connection mode's streams, reserved or open, by token.
        self.streams: dict[str, Stream] = {}

    async def handle(
        self,
        decision: Decision,
        request: Any,
        new_output: Callable[[], StreamOutput],
        request_context: Any = None,
    ) -> Reply | Stream:
        """Carries out a decision for `request` (the framework's request, handed to
        `on_connect` with `request_context`, what the route's `context_getter` returned for
        it); `new_output()` makes the response a new stream is written to."""
        if isinstance(decision, Reply):
            return decision
        context = await authenticate(self.on_connect, None, request, request_context)
        if context is None:
            return Reply.error(403, "Forbidden")
        if context.is_expired():
            return Reply.error(403, "Token expired")
        if isinstance(decision, Distinct):
            return self._distinct(decision, context, new_output)
        if isinstance(decision, Reserve):
            return self._reserve(decision, context, new_output)
        stream = self.streams.get(decision.token)
        if stream is None:
            return Reply.error(404, "Stream not found")
        if stream.identity != _identity(context):
            return Reply.error(403, "Forbidden")
        if isinstance(decision, Listen):
            return self._listen(stream)
        if isinstance(decision, Execute):
            return self._execute(decision, stream, context)
        return self._stop(decision, stream)

    # ----- distinct connections ---------------------------------------------------------------

    def _distinct(
        self, action: Distinct, context: ConnectionContext, new_output: Callable[[], StreamOutput]
    ) -> Reply | Stream:
        params = action.params
        prepared = self.manager.prepare(params.query, params.operation_name, params.variables)
        stream = self._new_stream(DISTINCT_ENVELOPE, new_output(), limit=1, rate=None)
        if not self._admitted(stream, context):
            return TOO_MANY_CONNECTIONS
        stream.opened = True
        self._arm_expiry(stream, context)
        if isinstance(prepared, list):
            self._refuse(stream, DISTINCT_OPERATION, prepared)
        else:
            resume_from = action.last_event_id
            self._start(
                stream, DISTINCT_OPERATION, prepared, context, params.extensions, resume_from
            )
        return stream

    # ----- single connection mode -------------------------------------------------------------

    def _reserve(
        self, action: Reserve, context: ConnectionContext, new_output: Callable[[], StreamOutput]
    ) -> Reply:
        if action.offered is not None and action.offered in self.streams:
            return Reply.error(409, "Stream already registered")
        token = secrets.token_urlsafe(32)
        options = self.options
        stream = self._new_stream(
            SINGLE_ENVELOPE,
            new_output(),
            limit=options.max_subscriptions,
            rate=rate_limit(options),
            token=token,
            identity=_identity(context),
        )
        if not self._admitted(stream, context):
            return TOO_MANY_CONNECTIONS
        self._arm_expiry(stream, context)
        self.streams[token] = stream
        stream.expiry = asyncio.get_running_loop().call_later(
            self.options.connection_init_timeout, self._expire, stream
        )
        return Reply.text(201, token)

    def _expire(self, stream: Stream) -> None:
        if not stream.opened:
            self.closed(stream, StreamEnd.RESERVATION_TIMEOUT)

    def _listen(self, stream: Stream) -> Reply | Stream:
        if stream.opened:
            return Reply.error(409, "Stream already open")
        stream.opened = True
        if stream.expiry is not None:
            stream.expiry.cancel()
        return stream

    def _execute(self, action: Execute, stream: Stream, context: ConnectionContext) -> Reply:
        self._arm_expiry(stream, context)
        op_id = action.operation_id
        if stream.operations.is_live(op_id):
            return Reply.error(409, "Operation with ID already exists")
        params = action.params
        prepared = stream.connection.prepare(params.query, params.operation_name, params.variables)
        if isinstance(prepared, list):
            return Reply.errors(400, stream.connection.errors.format_all(prepared))
        operations = stream.operations
        if operations.at_limit():
            self._refuse(stream, op_id, [too_many_operations(operations.limit)])
            return Reply(202)
        limited = operations.rate_refusal()
        if limited is None:
            self._start(stream, op_id, prepared, context, params.extensions)
        elif operations.abusive:
            self._end(stream, StreamEnd.POLICY_VIOLATION)
            return Reply.error(429, "Rate limit exceeded")
        else:
            self._refuse(stream, op_id, [limited])
        return Reply(202)

    def _stop(self, action: Stop, stream: Stream) -> Reply:
        # The client asked: it gets no `complete` for it (the 200 says it is done).
        stream.operations.forget(action.operation_id)
        return Reply(200)

    # ----- operations ---------------------------------------------------------------------------

    def _start(
        self,
        stream: Stream,
        op_id: str,
        prepared: PreparedOperation,
        context: ConnectionContext,
        extensions: Mapping[str, Any] | None = None,
        last_event_id: str | None = None,
    ) -> None:
        """Subscribes (with the request's `extensions` and `Last-Event-ID`), or runs a query or
        mutation as `context` (the request's own)."""
        if prepared.kind != "subscription":
            task = asyncio.create_task(self._run_query(stream, op_id, prepared, context))
            stream.operations.add_query(op_id, task)
            return
        stream.connection.context = context
        errors = stream.connection.subscribe(
            op_id, prepared, extensions, last_event_id=last_event_id
        )
        if errors:
            self._refuse(stream, op_id, errors)
        else:
            stream.operations.add_subscription(op_id)
            stream.subscribed = stream.distinct

    async def _run_query(
        self, stream: Stream, op_id: str, prepared: PreparedOperation, context: ConnectionContext
    ) -> None:
        connection = stream.connection
        try:
            connection.context = context  # read by `execute` in this same step
            result = await connection.execute(prepared)
        except Exception:
            logger.exception("a query over SSE failed")
            message = {"message": MASKED_MESSAGE, "extensions": dict(INTERNAL_ERROR_EXTENSIONS)}
            result = {"data": None, "errors": [message]}
        finally:
            ours = stream.operations.query_finished(op_id, asyncio.current_task())
        if ours:
            self._finish(stream, op_id, result)

    def _refuse(self, stream: Stream, op_id: str, errors: list[GraphQLError]) -> None:
        """An operation that does not run: a `next` with its errors, then `complete`."""
        self._finish(stream, op_id, {"errors": stream.connection.errors.format_all(errors)})

    def _finish(self, stream: Stream, op_id: str, result: Mapping[str, Any]) -> None:
        record_id = None if stream.distinct else op_id
        stream.output.send(next_record(record_id, result) + complete_record(record_id))
        if stream.distinct:
            stream.output.end()

    # ----- lifecycle ----------------------------------------------------------------------------

    def _new_stream(
        self,
        envelope: Envelope,
        output: StreamOutput,
        *,
        limit: int,
        rate: RateLimit | None,
        token: str | None = None,
        identity: tuple[str | None, str | None] | None = None,
    ) -> Stream:
        connection = self.manager.connect(envelope=envelope, on_frames=output.on_frames)
        operations = Operations(connection, limit, rate)
        stream = Stream(connection, output, operations, token=token, identity=identity)

        async def shutdown() -> None:
            await self.shutdown(stream)

        connection.on_shutdown = shutdown
        return stream

    async def shutdown(self, stream: Stream) -> None:
        """Server shutdown: `complete` for every live operation, then the response ends."""
        live = [op_id for op_id in stream.operations.ids() if stream.operations.is_live(op_id)]
        stream.operations.forget_all()
        record_id: Callable[[str], str | None] = (lambda _: None) if stream.distinct else str
        for op_id in live:
            stream.output.send(complete_record(record_id(op_id)))
        if self._end(stream, StreamEnd.GOING_AWAY):
            await stream.output.ended()

    def _arm_expiry(self, stream: Stream, context: ConnectionContext) -> None:
        """The stream ends when `context`'s credentials expire, those of the latest request on
        it (the reservation's, then each operation's: a request with new ones extends it)."""
        if stream.credentials_expiry is not None:
            stream.credentials_expiry.cancel()
            stream.credentials_expiry = None
        left = context.seconds_left()
        if left is not None:
            stream.credentials_expiry = asyncio.get_running_loop().call_later(
                max(left, 0.0), self._token_expired, stream
            )

    def _token_expired(self, stream: Stream) -> None:
        """Ends the stream without `complete`s: its client reconnects with new credentials."""
        self._end(stream, StreamEnd.TOKEN_EXPIRED)

    def _end(self, stream: Stream, end: StreamEnd) -> bool:
        """Drops the stream (counted as `end`) and ends its response if it was open; True
        then."""
        opened = stream.opened
        self.closed(stream, end)
        if opened:
            stream.output.end()
        return opened

    def _admitted(self, stream: Stream, context: ConnectionContext) -> bool:
        """The stream acts for `context` if its user's and tenant's quotas of connections
        allow; otherwise it is dropped (never opened) and False returned."""
        if stream.connection.admit(context) is None:
            return True
        self.closed(stream, StreamEnd.TOO_MANY_REQUESTS)
        return False

    def closed(self, stream: Stream, code: int) -> None:
        """The stream is over (its response ended, the client left, or it was dropped):
        forgets its operations, its connection and its token. Only the first call counts."""
        if stream.closed:
            return
        stream.closed = True
        for timer in (stream.expiry, stream.credentials_expiry):
            if timer is not None:
                timer.cancel()
        if stream.token is not None and self.streams.get(stream.token) is stream:
            del self.streams[stream.token]
        stream.operations.forget_all()
        stream.connection.close(int(code))
