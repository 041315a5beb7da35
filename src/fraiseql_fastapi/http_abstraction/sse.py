"""The SSE transport: serves GraphQL over Server-Sent Events (`protocols.sse`) as a raw ASGI
app on the GraphQL path. It reads the request (at most `max_message_size` of body), sends the
protocol's replies, and serves each event stream with one loop woken by the core: it drains
the connection's frames (as the core wrote them) and the protocol's own records, writes them in
one `http.response.body` per wake-up, sends a comment line when the stream has been idle for
`keepalive_interval`, and notices the client leaving (`http.disconnect`), which releases the
stream at once.

`SSEEndpoint(manager, on_connect=..., options=..., context_getter=...)` is one route's:
`handles(scope)` says whether a request is the protocol's, and calling it serves one (FastAPI
endpoints, whose `context_getter` is a dependency, return `endpoint.response(context)`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ..protocols.common import OnConnect, ProtocolOptions
from ..protocols.sse import (
    KEEPALIVE,
    Reply,
    SSEProtocol,
    SSERequest,
    Stream,
    StreamEnd,
    decide,
    wants_sse,
)
from .http import ContextGetter, get_request_context
from .websocket import FramesReady

if TYPE_CHECKING:
    from ..manager import SubscriptionManager

__all__ = ["EventStream", "SSEEndpoint"]

logger = logging.getLogger("fraiseql_fastapi")

_STREAM_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Proxies such as nginx would otherwise buffer the stream.
    (b"x-accel-buffering", b"no"),
]
_KEEPALIVE: Final = KEEPALIVE.encode()


class SSEEndpoint:
    """GraphQL over SSE on one route, with its own single connection mode streams (tokens are
    valid only on the route that issued them)."""

    def __init__(
        self,
        manager: SubscriptionManager,
        *,
        on_connect: OnConnect | None = None,
        options: ProtocolOptions | None = None,
        context_getter: ContextGetter | None = None,
    ) -> None:
        self.options = options or ProtocolOptions()
        self.context_getter = context_getter
        self.protocol = SSEProtocol(manager, on_connect=on_connect, options=self.options)

    def handles(self, scope: Scope) -> bool:
        """True when an HTTP request is this protocol's (see `protocols.sse.wants_sse`); any
        other request on the path is plain GraphQL over HTTP."""
        if scope["type"] != "http":
            return False
        return wants_sse(
            scope["method"],
            Headers(scope=scope),
            QueryParams(scope.get("query_string", b"")),
            self.options,
        )

    def response(self, request_context: Any = None) -> Response:
        """A response that serves the request it answers (for FastAPI endpoints), with
        `request_context` as what the route's `context_getter` returned for it."""
        return _ASGIResponse(self, request_context)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_context = await get_request_context(self.context_getter, Request(scope))
        await self.serve(scope, receive, send, request_context)

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, request_context: Any = None
    ) -> None:
        """Serves one request of the protocol."""
        method = scope["method"]
        body = await _read_body(receive, self.options.max_message_size) if method == "POST" else b""
        request = SSERequest(
            method, Headers(scope=scope), QueryParams(scope.get("query_string", b"")), body
        )
        decision = decide(request, self.options)
        if decision is None:  # not ours after all: as if no route took it
            await _send_reply(send, Reply.error(405, "Method not allowed", allow="POST"))
            return
        outcome = await self.protocol.handle(
            decision, Request(scope, receive), lambda: EventStream(self.options), request_context
        )
        if isinstance(outcome, Reply):
            await _send_reply(send, outcome)
            return
        output = outcome.output
        assert isinstance(output, EventStream)
        code: int = StreamEnd.INTERNAL_SERVER_ERROR
        try:
            code = await output.serve(outcome, send, receive)
        except Exception:
            logger.exception("an SSE stream failed")
        finally:
            self.protocol.closed(outcome, code)


class EventStream:
    """The response an event stream is written to (a `StreamOutput`): the core's frames and
    the protocol's records, in order, one write per wake-up."""

    def __init__(self, options: ProtocolOptions) -> None:
        self.options = options
        self.frames_ready = FramesReady()
        self._outbox: list[str] = []
        self._ending = False
        self._serving = False
        self._finished = asyncio.Event()
        #: Set when the client left; the loop stops at its next wake-up.
        self._gone = False
        #: Whether anything was written since the last keep-alive tick.
        self._wrote = False
        self._keepalive_due = False
        self._keepalive: asyncio.TimerHandle | None = None

    @property
    def on_frames(self) -> Callable[[], None]:
        return self.frames_ready.set

    def send(self, text: str) -> None:
        self._outbox.append(text)
        self.frames_ready.set()

    def end(self) -> None:
        self._ending = True
        self.frames_ready.set()

    async def ended(self) -> None:
        if self._serving:
            await self._finished.wait()

    async def serve(self, stream: Stream, send: Send, receive: Receive) -> StreamEnd:
        """Streams until the protocol ends the stream or the client leaves; returns how it
        ended."""
        self._serving = True
        watcher = asyncio.ensure_future(self._watch(receive))
        self._schedule_keepalive()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
            # A first comment line, so that clients and proxies see the stream start now.
            await send({"type": "http.response.body", "body": _KEEPALIVE, "more_body": True})
            return await self._stream(stream, send)
        finally:
            self._serving = False
            self._finished.set()
            watcher.cancel()
            if self._keepalive is not None:
                self._keepalive.cancel()

    async def _stream(self, stream: Stream, send: Send) -> StreamEnd:
        # The hot path: one pass per wake-up, usually with one frame; look-ups hoisted.
        ready = self.frames_ready
        drain = stream.connection.drain
        done = stream.done
        ready.set()  # whatever was queued before the stream opened goes out at once
        while True:
            await ready.wait()
            ready.clear()
            if self._gone:
                return StreamEnd.NORMAL
            # Asked before draining: once it is done, its last frames are in this drain.
            finished = self._ending or done()
            texts = drain()
            if self._outbox:
                texts += self._outbox
                self._outbox = []
            if texts:
                body = "".join(texts).encode()
            elif self._keepalive_due:
                body = _KEEPALIVE
            else:
                body = b""
            self._keepalive_due = False
            if body:
                self._wrote = True
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if finished:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return StreamEnd.NORMAL

    async def _watch(self, receive: Receive) -> None:
        """Waits for the client to leave (the request's body, if any, was read before)."""
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self._gone = True
                self.frames_ready.set()
                return

    def _tick(self) -> None:
        """Every `keepalive_interval`: a comment line is due when nothing else went out."""
        if not self._wrote:
            self._keepalive_due = True
            self.frames_ready.set()
        self._wrote = False
        self._schedule_keepalive()

    def _schedule_keepalive(self) -> None:
        interval = self.options.keepalive_interval
        if interval:
            self._keepalive = asyncio.get_running_loop().call_later(interval, self._tick)


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request body, or its first `limit + 1` bytes when it is longer (the protocol then
    answers 413 without reading the rest)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit or not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_reply(send: Send, reply: Reply) -> None:
    headers = [(b"content-length", str(len(reply.body)).encode())]
    if reply.content_type is not None:
        headers.append((b"content-type", reply.content_type.encode()))
    if reply.allow is not None:
        headers.append((b"allow", reply.allow.encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


class _ASGIResponse(Response):
    """A response that is an ASGI app: FastAPI endpoints return one to hand the request's
    `receive` and `send` to the SSE transport."""

    def __init__(self, app: SSEEndpoint, request_context: Any) -> None:
        super().__init__()
        self.app = app
        self.request_context = request_context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app.serve(scope, receive, send, self.request_context)
        if self.background is not None:
            await self.background()
