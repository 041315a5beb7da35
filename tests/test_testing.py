"""`fraiseql_fastapi.testing.SubscriptionTestClient`, through its public API: in process over
the ASGI app (its lifespan included) and against a uvicorn server by URL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from helpers import protocol_app, running_server, until

from fraiseql_fastapi import ConnectionContext, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.testing import (
    ConnectionClosed,
    SubscriptionComplete,
    SubscriptionError,
    SubscriptionTestClient,
)

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()


@dataclass
class Message:
    """A chat message."""

    id: str
    text: str


@subscription(channel="room:{room_id}", registry=registry)
async def message_posted(event: Any, room_id: str, context: Any) -> Message:
    """New messages in a room."""
    return Message(id=event.data["id"], text=event.data["text"])


def authenticate(payload: Any, websocket: Any) -> Any:
    token = (payload or {}).get("token")
    if token == "forbidden":
        return False
    cookie = websocket.cookies.get("session")
    return ConnectionContext(
        user_id=token,
        ack_payload={"user": token, "header": websocket.headers.get("x-test"), "cookie": cookie},
    )


ROOM = "subscription ($r: String!) { messagePosted(roomId: $r) { id text } }"


def make_app() -> tuple[FastAPI, SubscriptionManager]:
    app, manager = protocol_app(registry.fields, authenticate, ping_interval=None)
    return app, manager


@contextlib.asynccontextmanager
async def client_for(
    mode: str, **kwargs: Any
) -> AsyncIterator[tuple[SubscriptionTestClient, SubscriptionManager]]:
    """A connected client, in process or against uvicorn, and the app's manager."""
    app, manager = make_app()
    kwargs.setdefault("connection_params", {"token": "t"})
    if mode == "asgi":
        async with SubscriptionTestClient(app, **kwargs) as client:
            yield client, manager
    else:
        async with (
            running_server(app) as address,
            SubscriptionTestClient(f"ws://{address}/graphql", **kwargs) as client,
        ):
            yield client, manager


MODES = pytest.mark.parametrize("mode", ["asgi", "server"])


@MODES
async def test_subscribe_publish_next(mode: str) -> None:
    async with client_for(mode) as (client, manager):
        assert client.ack_payload == {"user": "t", "header": None, "cookie": None}
        sub = await client.subscribe(ROOM, {"r": "42"})
        other = await client.subscribe(ROOM, {"r": "7"})
        delivered = await manager.publish(
            "room:42", {"id": "1", "text": "hi"}, event_type="messagePosted"
        )
        assert delivered == 1
        assert await sub.next() == {"data": {"messagePosted": {"id": "1", "text": "hi"}}}
        await manager.publish("room:7", {"id": "2", "text": "yo"})
        assert await other.next() == {"data": {"messagePosted": {"id": "2", "text": "yo"}}}


TWO_OPERATIONS = """
subscription A { messagePosted(roomId: "1") { id } }
subscription B($r: String!) { messagePosted(roomId: $r) { id } }
"""


@MODES
async def test_async_for_and_operation_name(mode: str) -> None:
    async with client_for(mode) as (client, manager):
        sub = await client.subscribe(TWO_OPERATIONS, {"r": "5"}, operation_name="B")
        for n in range(3):
            await manager.publish("room:5", {"id": str(n), "text": "x"})
        got = []
        async for payload in sub:
            got.append(payload["data"]["messagePosted"]["id"])
            if len(got) == 3:
                break
        assert got == ["0", "1", "2"]


@MODES
async def test_headers_and_cookies(mode: str) -> None:
    async with client_for(mode, headers={"X-Test": "yes"}, cookies={"session": "abc"}) as (
        client,
        _,
    ):
        assert client.ack_payload == {"user": "t", "header": "yes", "cookie": "abc"}


@MODES
async def test_execute_a_query(mode: str) -> None:
    async with client_for(mode) as (client, _):
        assert await client.execute("{ __typename }") == {"data": {"__typename": "Query"}}
        result = await client.execute(
            "query ($skip: Boolean!) { __typename @skip(if: $skip) }", {"skip": True}
        )
        assert result == {"data": {}}


@MODES
async def test_validation_error_is_raised(mode: str) -> None:
    async with client_for(mode) as (client, _):
        sub = await client.subscribe("subscription { messagePosted(roomId: 1) { nope } }")
        with pytest.raises(SubscriptionError) as raised:
            await sub.next()
        assert "nope" in str(raised.value)
        assert all("message" in error for error in raised.value.errors)
        with pytest.raises(SubscriptionComplete):  # and the operation is over
            await sub.next()
        with pytest.raises(SubscriptionError, match="Cannot query field"):
            await client.execute("{ nothing }")


@MODES
async def test_on_connect_refusal_is_connection_closed_4403(mode: str) -> None:
    with pytest.raises(ConnectionClosed) as raised:
        async with client_for(mode, connection_params={"token": "forbidden"}):
            pass
    assert (raised.value.code, raised.value.reason) == (4403, "Forbidden")


@MODES
async def test_client_complete_stops_delivery(mode: str) -> None:
    async with client_for(mode) as (client, manager):
        sub = await client.subscribe(ROOM, {"r": "1"})
        assert manager.get_metrics()["subscribers"] == 1
        await sub.complete()
        assert manager.get_metrics()["subscribers"] == 0
        assert await manager.publish("room:1", {"id": "1", "text": "late"}) == 0
        with pytest.raises(SubscriptionComplete):
            await sub.next()


@MODES
async def test_server_close_surfaces_in_next(mode: str) -> None:
    async with client_for(mode) as (client, manager):
        sub = await client.subscribe(ROOM, {"r": "1"})
        (connection,) = manager.connections
        await connection.shutdown()  # the server completes it and closes with 1001
        with pytest.raises(SubscriptionComplete):
            await sub.next()
        await until(lambda: client.closed is not None)
        assert client.closed is not None and client.closed.code == 1001
        with pytest.raises(ConnectionClosed) as raised:
            await client.subscribe(ROOM, {"r": "1"})
        assert raised.value.code == 1001


@MODES
async def test_timeouts_raise_instead_of_hanging(mode: str) -> None:
    async with client_for(mode) as (client, _):
        # Short waits only once subscribed: on a loaded machine the app's startup, accept
        # and the subscribe's round trip may take longer than the wait under test.
        sub = await client.subscribe(ROOM, {"r": "1"})
        client.timeout = 0.2
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="no message for operation 1"):
            await sub.next()
        with pytest.raises(TimeoutError):
            await sub.next(timeout=0.05)
        assert time.monotonic() - started < 2
        # The goodbye (a ping on the way out to a server) is not what is under test.
        client.timeout = 5.0


async def test_ack_timeout_raises() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        """Accepts the WebSocket and never answers."""
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "graphql-transport-ws"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    with pytest.raises(TimeoutError, match="connection_ack"):
        async with SubscriptionTestClient(silent, timeout=0.1):
            pass


async def test_lifespan_runs_in_process() -> None:
    app, manager = make_app()
    events: list[str] = []
    started, stopped = manager.start, manager.stop

    async def start() -> None:
        events.append("start")
        await started()

    async def stop(timeout: float = 5.0) -> None:
        events.append("stop")
        await stopped(timeout)

    manager.start = start  # type: ignore[method-assign]
    manager.stop = stop  # type: ignore[method-assign]
    async with SubscriptionTestClient(app, connection_params={"token": "t"}) as client:
        assert events == ["start"]
        sub = await client.subscribe(ROOM, {"r": "1"})
    # Leaving shut the app down as a server does: complete, then 1001.
    assert events == ["start", "stop"]
    with pytest.raises(SubscriptionComplete):
        await sub.next()
    assert client.closed is not None and client.closed.code == 1001
    assert manager.get_metrics()["connections_closed"] == {1001: 1}
    assert manager.get_metrics()["subscribers"] == 0


async def test_without_lifespan_the_client_closes_1000() -> None:
    app, manager = make_app()
    async with SubscriptionTestClient(
        app, connection_params={"token": "t"}, lifespan=False
    ) as client:
        await client.subscribe(ROOM, {"r": "1"})
    assert client.closed is not None and client.closed.code == 1000
    await until(lambda: manager.get_metrics()["connections_closed"] == {1000: 1})
    assert manager.get_metrics()["subscribers"] == 0


async def test_unknown_path_is_connection_closed() -> None:
    app, _ = make_app()
    with pytest.raises(ConnectionClosed):
        async with SubscriptionTestClient(app, path="/elsewhere"):
            pass


async def test_server_pings_are_answered() -> None:
    app, manager = protocol_app(registry.fields, authenticate, ping_interval=0.05, pong_timeout=0.1)
    async with SubscriptionTestClient(app, connection_params={"token": "t"}) as client:
        sub = await client.subscribe(ROOM, {"r": "1"})
        await asyncio.sleep(0.5)  # several pings: a missing pong would close with 4504
        assert client.closed is None
        await manager.publish("room:1", {"id": "1", "text": "still here"})
        assert (await sub.next())["data"]["messagePosted"]["text"] == "still here"


async def test_a_failing_lifespan_startup_is_raised() -> None:
    @contextlib.asynccontextmanager
    async def broken(app: Any) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    with pytest.raises(RuntimeError, match="no database"):
        async with SubscriptionTestClient(FastAPI(lifespan=broken)):
            pass


async def test_an_app_without_lifespan_support_is_served() -> None:
    app, _ = make_app()

    async def websocket_only(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket", "no lifespan here"
        await app(scope, receive, send)

    async with SubscriptionTestClient(websocket_only, connection_params={"token": "t"}) as c:
        assert await c.execute("{ __typename }") == {"data": {"__typename": "Query"}}
