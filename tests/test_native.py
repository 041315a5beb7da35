"""The native WebSocket path end to end: uvicorn with `NativeWebSocketProtocol`, the same
FastAPI app and route, the socket handed to the Rust core after the upgrade. The protocol
suites run on this path too (`FRAISEQL_TEST_NATIVE=1` in `scripts/test`); this file checks
what is particular to it: the handover, frames written by the core, other WebSocket routes
left to uvicorn, refusals and shutdown, and that nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from helpers import COUNTER, counters, protocol_app, running_server, until, ws_client
from websockets.asyncio.client import connect

from fraiseql_fastapi import SubscriptionManager
from fraiseql_fastapi.native import ADOPT_KEY, NATIVE_EXTENSION

pytestmark = pytest.mark.anyio


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.asynccontextmanager
async def native_server(**options: Any) -> AsyncIterator[tuple[str, SubscriptionManager, FastAPI]]:
    app, manager = protocol_app(
        counters.fields, None, **{"ping_interval": None, "connection_init_timeout": 1, **options}
    )

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"echo {text}")
        await websocket.close()

    async with running_server(app, native=True) as address:
        yield address, manager, app


async def test_subscriptions_are_served_by_the_core() -> None:
    async with native_server() as (address, manager, _), ws_client(address) as client:
        assert (await client.init())["type"] == "connection_ack"
        assert manager.get_metrics()["native_sockets"] == 1
        await client.subscribe("1", COUNTER)
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        for n in range(100):
            await manager.publish("counter", {"n": n})
        received = [await client.receive() for _ in range(100)]
        assert [m["payload"]["data"]["counter"] for m in received] == list(range(100))
        assert {m["type"] for m in received} == {"next"}
        # A control message goes out after the frames queued before it.
        await manager.publish("counter", {"n": 100})
        await client.send({"id": "1", "type": "complete"})
        await client.send({"type": "ping"})
        assert (await client.receive())["payload"]["data"]["counter"] == 100
        assert await client.receive() == {"type": "pong"}


async def test_other_websocket_routes_stay_with_uvicorn() -> None:
    async with (
        native_server() as (address, manager, _),
        connect(f"ws://{address}/echo") as ws,
    ):
        await ws.send("hi")
        assert await ws.recv() == "echo hi"
        assert manager.get_metrics()["native_sockets"] == 0


async def test_no_per_message_compression_is_negotiated() -> None:
    """The core writes frames as they are: an offer of permessage-deflate is declined."""
    async with (
        native_server() as (address, _, _),
        connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"]) as ws,  # type: ignore[list-item]
    ):
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_refusals_keep_their_close_codes() -> None:
    async with native_server() as (address, manager, _):
        async with ws_client(address, subprotocols=["nope"]) as client:
            assert (await client.closed_with())[0] == 4406
        async with ws_client(address) as client:  # no connection_init in time
            assert (await client.closed_with())[0] == 4408
        async with ws_client(address) as client:
            await client.init()
            await client.send({"type": "connection_init"})
            assert (await client.closed_with())[0] == 4429
        await until(lambda: manager.get_metrics()["native_sockets"] == 0)
        assert manager.connections_closed[4408] == 1


async def test_client_disconnects_release_everything() -> None:
    async def connect_and_leave() -> None:
        async with ws_client(address) as client:
            await client.init()
            await client.subscribe("1", COUNTER)
            await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await until(lambda: manager.get_metrics()["native_sockets"] == 0)

    async with native_server() as (address, manager, _):
        await connect_and_leave()  # the core's runtime and event descriptor exist from now on
        before = open_fds()
        for _ in range(20):
            await connect_and_leave()
        await until(lambda: manager.get_metrics()["subscribers"] == 0)
        assert not manager.connections
        await until(lambda: open_fds() <= before)


async def test_shutdown_completes_then_closes_1001() -> None:
    app, manager = protocol_app(counters.fields, None, ping_interval=None)
    async with (
        running_server(app, native=True) as address,
        connect(
            f"ws://{address}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        ) as ws,
    ):
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": COUNTER}}))
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.stop()
        assert json.loads(await ws.recv()) == {"id": "1", "type": "complete"}
        with pytest.raises(Exception) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 1001


async def test_an_idle_connection_keeps_no_handler() -> None:
    """Once the core owns the socket the route's handler has returned: no uvicorn protocol
    object (nor anything it holds) is left per connection, nor, once `on_connect` accepted,
    the request it decided from; and the connections are served."""
    from starlette.websockets import WebSocket

    from fraiseql_fastapi.native.uvicorn import NativeWebSocketProtocol

    async with native_server() as (address, manager, _), contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(ws_client(address)) for _ in range(5)]
        for client in clients:
            await client.init()
            await client.subscribe("1", COUNTER)
        await until(lambda: manager.get_metrics()["subscribers"] == 5)
        gc.collect()
        assert not [o for o in gc.get_objects() if isinstance(o, NativeWebSocketProtocol)]
        assert not [o for o in gc.get_objects() if isinstance(o, WebSocket)]
        await manager.publish("counter", {"n": 7})
        for client in clients:
            message = await client.receive()
            assert message["payload"] == {"data": {"counter": 7}}


async def test_what_served_the_handshake_is_freed_at_the_handover() -> None:
    """What uvicorn served the upgrade with goes at the handover, without waiting for the
    cyclic GC (in a burst of handshakes those cycles pile up and fragment the heap):
    - its httptools protocol, which keeps its parser (holding its callbacks) until a
      `connection_lost` that never comes after an upgrade;
    - the aborted asyncio transport, which keeps its read callback, a bound method of itself."""
    from asyncio.selector_events import _SelectorSocketTransport

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    def left_over() -> list[Any]:
        return [
            o
            for o in gc.get_objects()
            if isinstance(o, HttpToolsProtocol)
            or (isinstance(o, _SelectorSocketTransport) and o.is_closing())
        ]

    async with native_server() as (address, manager, _), contextlib.AsyncExitStack() as stack:
        gc.collect()
        gc.disable()
        try:
            clients = [await stack.enter_async_context(ws_client(address)) for _ in range(5)]
            for client in clients:
                await client.init()
            assert manager.get_metrics()["native_sockets"] == 5
            assert left_over() == []
        finally:
            gc.enable()


def reset_socket() -> socket.socket:
    """The server's end of a TCP connection its client has reset (SO_LINGER 0)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server_end, _ = listener.accept()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    return server_end


async def test_a_client_gone_before_the_handover_is_no_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client that resets its connection between the 101 and the handover is a client
    gone (1006, logged at debug level), not a failure of the server (4500, an error log)."""
    app, manager = protocol_app(counters.fields, None, ping_interval=None)
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"sec-websocket-protocol", b"graphql-transport-ws")],
        "subprotocols": ["graphql-transport-ws"],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "extensions": {NATIVE_EXTENSION: {"ping_interval": None, "ping_timeout": None}},
    }
    events = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []
    gone = reset_socket()

    async def receive() -> dict[str, Any]:
        if events:
            return events.pop()
        await asyncio.Event().wait()  # nothing more: the core would read the socket
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        message = dict(message)
        adopt = message.pop(ADOPT_KEY, None)
        sent.append(message)
        if adopt is not None:
            adopt(os.dup(gone.fileno()))

    await manager.start()
    try:
        with gone, caplog.at_level(logging.DEBUG, logger="fraiseql_fastapi"):
            await asyncio.wait_for(app(scope, receive, send), 5)
        assert [m["type"] for m in sent] == ["websocket.accept"]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("before the core took its socket" in r.message for r in caplog.records)
        assert manager.get_metrics()["connections_closed"] == {1006: 1}
        assert manager.get_metrics()["native_sockets"] == 0
    finally:
        await manager.stop()
