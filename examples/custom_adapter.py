"""The ticker subscription served without any ASGI framework: a `WebSocketAdapter` over the
`websockets` library's own asyncio server, served by `WebSocketTransport`.

    python examples/custom_adapter.py [--host 127.0.0.1] [--port 8765] [--interval 1.0]

Connect a graphql-transport-ws (or legacy graphql-ws) client to ws://127.0.0.1:8765/graphql
and subscribe to
`subscription { ticks(channel: "demo") { id value ts } }`: the server publishes a tick on
channel "demo" every `--interval` seconds.

This is the whole recipe for a new framework: implement the adapter's few members over its
WebSocket object, then run the handler on each connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from fraiseql_fastapi import ID, EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction import (
    OnConnect,
    ProtocolOptions,
    WebSocketDisconnected,
    WebSocketTransport,
)
from fraiseql_fastapi.protocols import websocket_protocol

PATH = "/graphql"

#: This example's own subscriptions (so that importing several examples does not mix them).
registry = SubscriptionRegistry()


@dataclass
class Tick:
    """One value published on a channel."""

    id: ID
    channel: str
    value: int
    ts: float | None = None


@subscription(channel="{channel}", scope="global", registry=registry)
def ticks(event: Any, channel: str) -> Tick:
    """The ticks published on `channel`, in publish order."""
    data = event.data
    return Tick(id=data["id"], channel=event.channel, value=data["value"], ts=data.get("ts"))


# --8<-- [start:adapter]
class WebsocketsAdapter:
    """`WebSocketAdapter` over a `websockets.asyncio.server.ServerConnection`.

    The library completes the handshake before our handler runs (subprotocol included, chosen
    by `select_subprotocol` below), so `accept` has nothing left to do.
    """

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    @property
    def subprotocols(self) -> Sequence[str]:
        headers = self._connection.request.headers if self._connection.request else None
        if headers is None:
            return []
        offered = ",".join(headers.get_all("Sec-WebSocket-Protocol"))
        return [name.strip() for name in offered.split(",") if name.strip()]

    @property
    def request(self) -> ServerConnection:
        return self._connection

    @property
    def is_connected(self) -> bool:
        return self._connection.state is State.OPEN

    async def accept(self, subprotocol: str | None) -> None:
        """Already done by the library during the handshake."""

    async def receive_text(self) -> str:
        try:
            message = await self._connection.recv()
        except ConnectionClosed as closed:
            raise WebSocketDisconnected(closed.rcvd.code if closed.rcvd else 1006) from None
        if not isinstance(message, str):
            raise TypeError("binary WebSocket message")
        return message

    async def send_text(self, text: str) -> None:
        try:
            await self._connection.send(text)
        except ConnectionClosed as closed:
            raise WebSocketDisconnected(closed.rcvd.code if closed.rcvd else 1006) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._connection.close(code, reason)


# --8<-- [end:adapter]


# --8<-- [start:serve]
def select_subprotocol(
    options: ProtocolOptions | None, connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """The subprotocol the handler will speak: the client's first choice among those `options`
    turn on (graphql-transport-ws, graphql-ws); otherwise none, and the handler closes with
    4406."""
    chosen = websocket_protocol(offered, options or ProtocolOptions())
    return Subprotocol(chosen.subprotocol) if chosen is not None else None


def only_graphql_path(connection: ServerConnection, request: Request) -> Response | None:
    """Refuses handshakes on other paths with 404."""
    if request.path.split("?", 1)[0] != PATH:
        return connection.respond(HTTPStatus.NOT_FOUND, "Not found\n")
    return None


async def handle_connection(
    manager: SubscriptionManager,
    on_connect: OnConnect | None,
    options: ProtocolOptions | None,
    connection: ServerConnection,
) -> None:
    """Serves one connection with the protocol its client chose."""
    adapter = WebsocketsAdapter(connection)
    await WebSocketTransport(manager, adapter, on_connect=on_connect, options=options).run()


def create_manager(bus: EventBusConfig | None = None) -> SubscriptionManager:
    """A fresh manager for this example's subscriptions."""
    return SubscriptionManager(bus or EventBusConfig.memory(), subscriptions=registry.fields)


@contextlib.asynccontextmanager
async def running_server(
    manager: SubscriptionManager,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    on_connect: OnConnect | None = None,
    options: ProtocolOptions | None = None,
) -> AsyncIterator[Server]:
    """Serves `manager` at ws://host:port/graphql while inside (port 0: a free port, see
    `server.sockets`)."""
    handler = functools.partial(handle_connection, manager, on_connect, options)
    await manager.start()
    async with serve(
        handler,
        host,
        port,
        select_subprotocol=functools.partial(select_subprotocol, options),
        process_request=only_graphql_path,
    ) as server:
        try:
            yield server
        finally:
            # Before the library closes the sockets: every operation gets `complete`, then 1001.
            await manager.stop()


# --8<-- [end:serve]


async def publish_ticks(
    manager: SubscriptionManager, channel: str, interval: float, stop: asyncio.Event
) -> None:
    """Publishes a tick on `channel` every `interval` seconds until `stop` is set."""
    index = 0
    while not stop.is_set():
        data = {"id": str(index), "channel": channel, "value": index, "ts": time.time()}
        await manager.publish(channel, data, event_type="tick")
        index += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def serve_until_stopped(host: str, port: int, interval: float) -> None:
    """Runs the server and the demo publisher until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    manager = create_manager()
    async with running_server(manager, host, port):
        print(f"graphql-transport-ws and graphql-ws on ws://{host}:{port}{PATH} (Ctrl-C to stop)")
        await publish_ticks(manager, "demo", interval, stop)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
    args = parser.parse_args(argv)
    asyncio.run(serve_until_stopped(args.host, args.port, args.interval))


if __name__ == "__main__":
    main()
