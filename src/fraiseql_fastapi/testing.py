"""`SubscriptionTestClient`: a graphql-transport-ws client for your own tests.

It drives your ASGI application in process (no network, no server: the app's ASGI callable
with a `websocket` scope and in-memory queues, its lifespan run around the connection), or a
running server when given a `ws://` URL (with the `websockets` library)::

    from fraiseql_fastapi.testing import SubscriptionTestClient

    async def test_message_posted() -> None:
        async with SubscriptionTestClient(app, connection_params={"token": "t"}) as client:
            sub = await client.subscribe(
                "subscription ($r: String!) { messagePosted(roomId: $r) { id text } }",
                {"r": "42"},
            )
            await manager.publish("room:42", {...}, event_type="messagePosted")
            assert await sub.next() == {"data": {"messagePosted": {"id": "1", "text": "hi"}}}

`subscribe` returns once the server has handled the subscribe message (a ping/pong round trip
follows it), so an event published next reaches it. Whatever the server says that is not a
result is an exception: `SubscriptionError` (an `error` message, with its GraphQL errors),
`SubscriptionComplete` (the server completed the operation), `ConnectionClosed` (the socket
closed, with its code and reason, e.g. 4403 when `on_connect` refuses). Every wait has a
timeout (5 s by default) and raises `TimeoutError` saying what it waited for.

The client runs on asyncio (the loop the Rust core needs), under pytest-asyncio or anyio's
pytest plugin with the asyncio backend.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Mapping, MutableMapping
from types import TracebackType
from typing import Any, Final, Protocol

from starlette.types import ASGIApp

__all__ = [
    "ConnectionClosed",
    "Subscription",
    "SubscriptionComplete",
    "SubscriptionError",
    "SubscriptionTestClient",
]

#: The subprotocol the client speaks.
GRAPHQL_TRANSPORT_WS: Final = "graphql-transport-ws"

#: How long any wait lasts by default, in seconds.
DEFAULT_TIMEOUT: Final = 5.0


class ConnectionClosed(Exception):
    """The WebSocket closed: `code` and `reason` are those of the close frame (1006 when the
    connection ended without one)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class SubscriptionError(Exception):
    """The server sent `error` for an operation: `errors` is its payload, a list of GraphQL
    errors (`{"message": ..., "extensions": ...}`)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        messages = "; ".join(str(error.get("message")) for error in errors) or "no message"
        super().__init__(messages)
        self.errors = errors


class SubscriptionComplete(StopAsyncIteration):
    """The server completed the operation: no more results will come. A `StopAsyncIteration`,
    so `async for` over a subscription simply ends."""


# ----- transports ---------------------------------------------------------------------------


class _Transport(Protocol):
    """A client WebSocket: text messages both ways, and its close."""

    async def send(self, text: str) -> None: ...

    async def receive(self) -> str:
        """The next text message; `ConnectionClosed` once the socket closed."""
        ...

    async def close(self, code: int, reason: str) -> None: ...


class _Closed:
    """What the ASGI transport's queue holds once the connection is closed."""

    def __init__(self, code: int, reason: str, error: BaseException | None = None) -> None:
        self.code = code
        self.reason = reason
        self.error = error


class _ASGITransport:
    """The app's ASGI callable served over in-memory queues with a `websocket` scope."""

    def __init__(self, app: ASGIApp, scope: MutableMapping[str, Any]) -> None:
        self._app = app
        self._scope = scope
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[str | _Closed] = asyncio.Queue()
        self._closed: _Closed | None = None
        self._client_closed = False
        self._task: asyncio.Task[None] | None = None
        self._accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.subprotocol: str | None = None

    async def open(self, timeout: float) -> None:
        accepted = self._accepted
        self._to_app.put_nowait({"type": "websocket.connect"})
        self._task = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(asyncio.shield(accepted), timeout)
        except asyncio.TimeoutError:
            await self._abort()
            raise TimeoutError(
                f"the app did not accept the WebSocket at {self._scope['path']} within {timeout} s"
            ) from None

    async def _run(self) -> None:
        error: BaseException | None = None
        try:
            await self._app(self._scope, self._receive, self._send)
        except asyncio.CancelledError:
            pass
        except Exception as failure:
            error = failure
        self._set_closed(_Closed(1006, "the app returned without closing the WebSocket", error))

    def _set_closed(self, closed: _Closed) -> None:
        if self._closed is None:
            self._closed = closed
            self._from_app.put_nowait(closed)
        if not self._accepted.done():
            self._accepted.set_exception(_as_exception(self._closed))
            self._accepted.exception()  # retrieved: no warning when nobody waits any more

    async def _receive(self) -> dict[str, Any]:
        if self._closed is not None and self._to_app.empty():
            return {"type": "websocket.disconnect", "code": self._closed.code}
        return await self._to_app.get()

    async def _send(self, message: Mapping[str, Any]) -> None:
        kind = message["type"]
        if self._closed is not None:
            raise OSError("the WebSocket is closed")  # what a server's send does then
        if kind == "websocket.accept":
            self.subprotocol = message.get("subprotocol")
            if not self._accepted.done():
                self._accepted.set_result(None)
        elif kind == "websocket.send":
            text = message.get("text")
            if text is None:
                raise AssertionError("the app sent a binary message: graphql-transport-ws is text")
            self._from_app.put_nowait(str(text))
        elif kind == "websocket.close":
            # As a server does, the app then receives the disconnect.
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": message.get("code")})
            self._set_closed(_Closed(int(message.get("code") or 1000), message.get("reason") or ""))
        else:
            raise AssertionError(f"unexpected ASGI message from the app: {kind}")

    async def send(self, text: str) -> None:
        if self._closed is not None:
            raise _as_exception(self._closed)
        self._to_app.put_nowait({"type": "websocket.receive", "text": text})

    async def receive(self) -> str:
        item = await self._from_app.get()
        if isinstance(item, _Closed):
            self._from_app.put_nowait(item)  # for whoever receives next
            raise _as_exception(item)
        return item

    async def close(self, code: int, reason: str) -> None:
        if not self._client_closed:
            self._client_closed = True
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": code})
            if self._closed is None:
                self._set_closed(_Closed(code, reason))
        await self._finish()

    async def _finish(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        task = self._task
        if task is None or task.done():
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout)
        await self._abort()

    async def _abort(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _as_exception(closed: _Closed) -> BaseException:
    error = ConnectionClosed(closed.code, closed.reason)
    if closed.error is not None:
        error.__cause__ = closed.error
    return error


class _WebSocketsTransport:
    """A real WebSocket to a server, with the `websockets` library."""

    def __init__(self, url: str, headers: list[tuple[str, str]]) -> None:
        self._url = url
        self._headers = headers
        self._ws: Any = None
        self.subprotocol: str | None = None

    async def open(self, timeout: float) -> None:
        try:
            from websockets.asyncio.client import connect
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "SubscriptionTestClient needs the `websockets` library (13 or later) to "
                "connect to a URL: pip install websockets (or pass the ASGI app itself)"
            ) from error
        try:
            self._ws = await asyncio.wait_for(
                connect(
                    self._url,
                    subprotocols=[GRAPHQL_TRANSPORT_WS],  # type: ignore[list-item]
                    additional_headers=self._headers,
                    open_timeout=None,
                    ping_interval=None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise TimeoutError(f"could not connect to {self._url} within {timeout} s") from None
        self.subprotocol = self._ws.subprotocol

    async def send(self, text: str) -> None:
        from websockets.exceptions import ConnectionClosed as WSClosed

        try:
            await self._ws.send(text)
        except WSClosed as closed:
            raise _from_websockets(closed) from None

    async def receive(self) -> str:
        from websockets.exceptions import ConnectionClosed as WSClosed

        try:
            message = await self._ws.recv()
        except WSClosed as closed:
            raise _from_websockets(closed) from None
        if not isinstance(message, str):
            raise AssertionError("the server sent a binary message: graphql-transport-ws is text")
        return message

    async def close(self, code: int, reason: str) -> None:
        if self._ws is not None:
            await self._ws.close(code, reason)


def _from_websockets(closed: Any) -> ConnectionClosed:
    received = closed.rcvd
    if received is None:
        return ConnectionClosed(1006, "")
    return ConnectionClosed(int(received.code), str(received.reason))


# ----- the lifespan -------------------------------------------------------------------------


class _Lifespan:
    """The ASGI lifespan protocol around the connection: startup, then shutdown."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self._app = app
        self._state = state
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True
        self._error: BaseException | None = None

    async def startup(self, timeout: float) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self._state,
        }
        self._task = asyncio.create_task(self._run(scope))
        self._to_app.put_nowait({"type": "lifespan.startup"})
        message = await self._wait("startup", timeout)
        if message is None:
            if self._error is not None:
                # An app without a lifespan raises at once: serve without one, as servers do.
                self._supported = False
            return
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the app's lifespan startup failed: {message.get('message', '')}")

    async def shutdown(self, timeout: float) -> None:
        if self._task is None or not self._supported or self._task.done():
            return
        self._to_app.put_nowait({"type": "lifespan.shutdown"})
        message = await self._wait("shutdown", timeout)
        if message is not None and message["type"] == "lifespan.shutdown.failed":
            raise RuntimeError(f"the app's lifespan shutdown failed: {message.get('message', '')}")
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(self._task, timeout)

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self._app(scope, self._to_app.get, self._send)
        except Exception as error:
            self._error = error
        finally:
            self._from_app.put_nowait(None)

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        self._from_app.put_nowait(dict(message))

    async def _wait(self, phase: str, timeout: float) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self._from_app.get(), timeout)
        except asyncio.TimeoutError:
            if self._task is not None:
                self._task.cancel()
            raise TimeoutError(
                f"the app's lifespan {phase} did not finish within {timeout} s"
            ) from None


# ----- subscriptions ------------------------------------------------------------------------


class Subscription:
    """One operation started by `SubscriptionTestClient.subscribe`: its results, in order."""

    def __init__(self, client: SubscriptionTestClient, op_id: str, query: str) -> None:
        self._client = client
        self.id = op_id
        self.query = query
        self._messages: asyncio.Queue[dict[str, Any] | ConnectionClosed] = asyncio.Queue()
        #: Set once the operation ended (`complete` or `error` from the server, or ours).
        self.done = False
        self._end: BaseException | None = None

    def _deliver(self, message: dict[str, Any] | ConnectionClosed) -> None:
        self._messages.put_nowait(message)

    async def next(self, timeout: float | None = None) -> dict[str, Any]:
        """The payload of the next `next` message (`{"data": ..., "errors": ...}`).

        Raises `SubscriptionError` if the server sent `error`, `SubscriptionComplete` if it
        sent `complete` (and on every call after either), `ConnectionClosed` if the connection
        closed, and `TimeoutError` if nothing came within `timeout` seconds (default: the
        client's)."""
        if self._end is not None:
            raise self._end
        wait = self._client.timeout if timeout is None else timeout
        try:
            message = await asyncio.wait_for(self._messages.get(), wait)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"no message for operation {self.id} within {wait} s: {_short(self.query)}"
            ) from None
        if isinstance(message, ConnectionClosed):
            self._end = message
            self.done = True
            raise message
        kind = message.get("type")
        if kind == "next":
            payload: dict[str, Any] = message.get("payload") or {}
            return payload
        self.done = True
        self._client._forget(self.id)
        if kind == "error":
            errors = message.get("payload")
            self._end = SubscriptionComplete(f"operation {self.id} ended with an error")
            raise SubscriptionError(errors if isinstance(errors, list) else [errors or {}])
        self._end = SubscriptionComplete(f"operation {self.id} completed")
        raise self._end

    async def expect_complete(self, timeout: float | None = None) -> None:
        """Waits for the server's `complete`; AssertionError if a result comes instead."""
        try:
            payload = await self.next(timeout)
        except SubscriptionComplete:
            return
        raise AssertionError(f"expected complete for operation {self.id}, got {payload!r}")

    async def complete(self) -> None:
        """Ends the operation from the client (`complete`); no result is delivered after it.
        Returns once the server has handled it."""
        if self.done:
            return
        self.done = True
        self._end = SubscriptionComplete(f"operation {self.id} was completed by the client")
        self._client._forget(self.id)
        await self._client._send({"id": self.id, "type": "complete"})
        await self._client._sync()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.next()


# ----- the client ---------------------------------------------------------------------------


class SubscriptionTestClient:
    """A graphql-transport-ws client for tests, as an async context manager.

    `app` is an ASGI application (served in process; its lifespan runs around the connection
    unless `lifespan=False`) or a `ws://`/`wss://` URL of a running server. `path` is the
    WebSocket path in process (default "/graphql"); `connection_params` is the
    `connection_init` payload; `headers` and `cookies` go with the WebSocket handshake;
    `timeout` bounds every wait (connecting, the ack, each result).

    Entering connects and waits for `connection_ack` (its payload is `ack_payload`); a refusal
    raises `ConnectionClosed` (4403). Leaving shuts the app's lifespan down first when the
    client ran it (so, as on a server shutdown, live operations get `complete` and the socket
    closes with 1001), then closes the socket (1000) if it is still open.
    """

    def __init__(
        self,
        app: ASGIApp | str,
        *,
        path: str = "/graphql",
        connection_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        lifespan: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.app = app
        self.path = path
        self.connection_params = connection_params
        self.headers = dict(headers or {})
        self.cookies = dict(cookies or {})
        self.lifespan = lifespan
        self.timeout = timeout
        #: The payload of `connection_ack` (None when it had none).
        self.ack_payload: dict[str, Any] | None = None
        self._transport: _ASGITransport | _WebSocketsTransport | None = None
        self._lifespan: _Lifespan | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ack: asyncio.Future[dict[str, Any]] | None = None
        self._pongs: collections.deque[asyncio.Future[None]] = collections.deque()
        self._operations: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self._closed: ConnectionClosed | None = None

    # ----- connecting ---------------------------------------------------------------------

    async def __aenter__(self) -> SubscriptionTestClient:
        try:
            await self._connect()
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def _connect(self) -> None:
        header_list = [(name.lower(), value) for name, value in self.headers.items()]
        if self.cookies:
            cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
            header_list.append(("cookie", cookie))
        transport: _ASGITransport | _WebSocketsTransport
        if isinstance(self.app, str):
            transport = _WebSocketsTransport(self.app, header_list)
        else:
            state: dict[str, Any] = {}
            if self.lifespan:
                self._lifespan = _Lifespan(self.app, state)
                await self._lifespan.startup(self.timeout)
            transport = _ASGITransport(self.app, _websocket_scope(self.path, header_list, state))
        self._transport = transport  # closed on the way out even if opening fails
        await transport.open(self.timeout)
        self._ack = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(transport))
        init: dict[str, Any] = {"type": "connection_init"}
        if self.connection_params is not None:
            init["payload"] = dict(self.connection_params)
        await self._send(init)
        try:
            ack = await asyncio.wait_for(asyncio.shield(self._ack), self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no connection_ack within {self.timeout} s") from None
        payload = ack.get("payload")
        self.ack_payload = dict(payload) if isinstance(payload, Mapping) else None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the socket from the client (the app's lifespan keeps running)."""
        if self._transport is not None:
            await self._transport.close(code, reason)
            self._set_closed(ConnectionClosed(code, reason))
        await self._stop_reader()

    async def _shutdown(self) -> None:
        if self._lifespan is not None:
            lifespan, self._lifespan = self._lifespan, None
            await lifespan.shutdown(self.timeout)
            if self._reader is not None:
                # What the server sent on its way down (complete, the close) is read first.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._reader), 0.5)
        await self.close()

    async def _stop_reader(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    # ----- operations ---------------------------------------------------------------------

    async def subscribe(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> Subscription:
        """Starts an operation (a subscription, or a query/mutation) with a new id; returns
        once the server has handled it, so an event published now reaches it. Errors found
        before it starts (validation, authorization, limits) are raised by its `next()`."""
        op_id = str(next(self._ids))
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = dict(variables)
        if operation_name is not None:
            payload["operationName"] = operation_name
        subscription = Subscription(self, op_id, query)
        self._operations[op_id] = subscription
        await self._send({"id": op_id, "type": "subscribe", "payload": payload})
        await self._sync()
        return subscription

    async def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Runs a query or mutation over the socket; its result (`{"data": ..., "errors":
        ...}`). `SubscriptionError` if the server answers `error`."""
        operation = await self.subscribe(query, variables, operation_name)
        result = await operation.next(timeout)
        await operation.expect_complete(timeout)
        return result

    async def ping(self, timeout: float | None = None) -> None:
        """Sends `ping` and waits for the server's `pong`."""
        await self._sync(timeout)

    # ----- plumbing -------------------------------------------------------------------------

    async def _send(self, message: Mapping[str, Any]) -> None:
        if self._closed is not None:
            raise self._closed
        assert self._transport is not None, "use the client inside `async with`"
        await self._transport.send(json.dumps(message))

    async def _sync(self, timeout: float | None = None) -> None:
        """A ping/pong round trip: the server has handled everything sent before it."""
        pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs.append(pong)
        await self._send({"type": "ping"})
        wait = self.timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.shield(pong), wait)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no pong from the server within {wait} s") from None

    def _forget(self, op_id: str) -> None:
        self._operations.pop(op_id, None)

    async def _read(self, transport: _Transport) -> None:
        try:
            while True:
                text = await transport.receive()
                await self._dispatch(json.loads(text))
        except ConnectionClosed as closed:
            self._set_closed(closed)
        except Exception as error:  # a message we cannot read
            failed = ConnectionClosed(1006, f"the client failed reading a message: {error!r}")
            failed.__cause__ = error
            self._set_closed(failed)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "pong":
            if self._pongs:
                pong = self._pongs.popleft()
                if not pong.done():
                    pong.set_result(None)
        elif kind == "connection_ack":
            if self._ack is not None and not self._ack.done():
                self._ack.set_result(message)
        elif kind in ("next", "error", "complete"):
            operation = self._operations.get(str(message.get("id")))
            if operation is not None:
                operation._deliver(message)
        else:
            raise ValueError(f"unexpected message from the server: {message!r}")

    def _set_closed(self, closed: ConnectionClosed) -> None:
        if self._closed is not None:
            return
        self._closed = closed
        for future in [self._ack, *self._pongs]:
            if future is not None and not future.done():
                future.set_exception(closed)
                future.exception()  # retrieved: no "never retrieved" warning if nobody waits
        self._pongs.clear()
        for operation in self._operations.values():
            operation._deliver(closed)

    @property
    def closed(self) -> ConnectionClosed | None:
        """How the connection closed (None while it is open)."""
        return self._closed


def _websocket_scope(
    path: str, headers: list[tuple[str, str]], state: dict[str, Any]
) -> dict[str, Any]:
    path, _, query = path.partition("?")
    raw_headers = [
        (b"host", b"testserver"),
        (b"connection", b"upgrade"),
        (b"upgrade", b"websocket"),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-protocol", GRAPHQL_TRANSPORT_WS.encode()),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    ]
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": raw_headers,
        "subprotocols": [GRAPHQL_TRANSPORT_WS],
        "state": dict(state),
        "extensions": {},
    }


def _short(query: str, limit: int = 80) -> str:
    text = " ".join(query.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
