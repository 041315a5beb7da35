"""The graphql-transport-ws protocol over real WebSockets (uvicorn on 127.0.0.1), through the
public API: every rule with its close code, subscriptions end to end, isolation and cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from helpers import GatedSocket, flood, protocol_app, running_server, until, until_ended, ws_client

from fraiseql_fastapi import ConnectionContext, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction import ProtocolOptions, WebSocketTransport

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()


@dataclass
class Message:
    """A chat message."""

    id: str
    room_id: str
    text: str


@subscription(channel="room:{room_id}", registry=registry)
async def message_posted(event: Any, room_id: str, context: Any) -> Message | None:
    """New messages in a room."""
    if event.data.get("skip"):
        return None
    return Message(id=event.data["id"], room_id=event.data["room_id"], text=event.data["text"])


@subscription(registry=registry, channel="counter")
def counter(event: Any) -> int:
    """A number per event."""
    return int(event.data["n"])


TOKENS: dict[str, ConnectionContext] = {
    "alice": ConnectionContext(user_id="alice", tenant_id="acme", ack_payload={"hello": "alice"}),
    "bob": ConnectionContext(user_id="bob", tenant_id="globex"),
}


def authenticate(payload: Any, websocket: Any) -> Any:
    token = (payload or {}).get("token")
    if token == "forbidden":
        return False
    return TOKENS.get(token, True)


ROOM = "subscription ($room: String!) { messagePosted(roomId: $room) { id text } }"


def make_app(max_queue: int = 1000, **options: Any) -> tuple[FastAPI, SubscriptionManager]:
    return protocol_app(
        registry.fields,
        authenticate,
        max_queue,
        **{**{"connection_init_timeout": 0.5, "ping_interval": None}, **options},
    )


@contextlib.asynccontextmanager
async def server(
    max_queue: int = 1000, **options: Any
) -> AsyncIterator[tuple[str, SubscriptionManager]]:
    app, manager = make_app(max_queue, **options)
    async with running_server(app) as address:
        yield address, manager


# --- the handshake and the close codes ------------------------------------------------------


async def test_subprotocol_is_required() -> None:
    async with server() as (address, _), ws_client(address, subprotocols=["mqtt"]) as c:
        assert await c.closed_with() == (4406, "Subprotocol not acceptable")


async def test_init_timeout() -> None:
    async with server(connection_init_timeout=0.1) as (address, _), ws_client(address) as c:
        assert await c.closed_with() == (4408, "Connection initialisation timeout")


async def test_second_init_is_refused() -> None:
    async with server() as (address, _), ws_client(address) as c:
        assert await c.init() == {"type": "connection_ack"}
        await c.send({"type": "connection_init"})
        assert await c.closed_with() == (4429, "Too many initialisation requests")


async def test_subscribe_before_ack_is_unauthorized() -> None:
    async with server() as (address, _), ws_client(address) as c:
        await c.subscribe("1", ROOM, {"room": "1"})
        assert await c.closed_with() == (4401, "Unauthorized")


async def test_on_connect_can_refuse() -> None:
    async with server() as (address, _), ws_client(address) as c:
        await c.send({"type": "connection_init", "payload": {"token": "forbidden"}})
        assert await c.closed_with() == (4403, "Forbidden")


async def test_ack_payload_from_on_connect() -> None:
    async with server() as (address, _), ws_client(address) as c:
        assert await c.init({"token": "alice"}) == {
            "type": "connection_ack",
            "payload": {"hello": "alice"},
        }


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "Message is not valid JSON"),
        ('{"type": "nope"}', 'Unknown message type "nope"'),
        ('{"type": "subscribe", "id": "1", "payload": {"query": 1}}', "'query'"),
        ('{"type": "next", "id": "1", "payload": {}}', 'Unexpected message of type "next"'),
    ],
)
async def test_invalid_messages_close_4400(message: str, reason: str) -> None:
    async with server() as (address, _), ws_client(address) as c:
        await c.init()
        await c.ws.send(message)
        code, text = await c.closed_with()
        assert code == 4400
        assert reason in text


async def test_message_size_limit() -> None:
    async with server(max_message_size=100) as (address, _), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", ROOM + " " * 200, {"room": "1"})
        assert await c.closed_with() == (1009, "Message too big")


async def test_duplicate_operation_id() -> None:
    async with server() as (address, _), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", ROOM, {"room": "1"})
        await c.subscribe("1", ROOM, {"room": "1"})
        assert await c.closed_with() == (4409, "Subscriber for 1 already exists")


async def test_ping_pong_both_ways() -> None:
    async with server(ping_interval=0.05, pong_timeout=1) as (address, _), ws_client(address) as c:
        await c.init()
        await c.send({"type": "ping"})
        received = [await c.receive(), await c.receive()]
        assert {"type": "pong"} in received
        assert {"type": "ping"} in received
        await c.send({"type": "pong"})


async def test_missing_pong_closes() -> None:
    options = {"ping_interval": 0.05, "pong_timeout": 0.1}
    async with server(**options) as (address, _), ws_client(address) as c:
        await c.init()
        assert await c.receive() == {"type": "ping"}
        assert await c.closed_with() == (4504, "Pong not received in time")


# --- operations ---------------------------------------------------------------------------


async def test_subscription_end_to_end() -> None:
    async with server() as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", ROOM, {"room": "42"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        delivered = await manager.publish(
            "room:42", {"id": "1", "room_id": "42", "text": "hi"}, event_type="messagePosted"
        )
        assert delivered == 1
        assert await c.receive() == {
            "id": "1",
            "type": "next",
            "payload": {"data": {"messagePosted": {"id": "1", "text": "hi"}}},
        }
        await manager.publish("room:7", {"id": "2", "room_id": "7", "text": "elsewhere"})
        await manager.publish("room:42", {"id": "3", "room_id": "42", "text": "x", "skip": 1})
        await c.send({"id": "1", "type": "complete"})
        await until(lambda: manager.get_metrics()["subscribers"] == 0)
        assert await manager.publish("room:42", {"id": "4", "room_id": "42", "text": "late"}) == 0
        # The id is reusable after complete.
        await c.subscribe("1", ROOM, {"room": "42"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room:42", {"id": "5", "room_id": "42", "text": "again"})
        assert (await c.receive())["payload"]["data"]["messagePosted"]["id"] == "5"


async def test_validation_errors_keep_the_connection() -> None:
    async with server() as (address, _), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", "subscription { nope }")
        error = await c.receive()
        assert error["id"] == "1"
        assert error["type"] == "error"
        assert "nope" in error["payload"][0]["message"]
        assert "locations" in error["payload"][0]
        await c.subscribe("2", ROOM, {"room": 42})  # wrong variable type
        error = await c.receive()
        assert error["type"] == "error"
        assert "$room" in error["payload"][0]["message"]
        await c.subscribe("3", ROOM)  # missing variable
        assert (await c.receive())["type"] == "error"
        await c.send({"type": "ping"})
        assert await c.receive() == {"type": "pong"}


async def test_operation_name_selects() -> None:
    query = (
        "subscription A { counter } "
        "subscription B ($room: String!) { messagePosted(roomId: $room) { text } }"
    )
    async with server() as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", query, {"room": "9"}, operationName="B")
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room:9", {"id": "1", "room_id": "9", "text": "b"})
        assert (await c.receive())["payload"] == {"data": {"messagePosted": {"text": "b"}}}
        await c.subscribe("2", query)
        assert (await c.receive())["type"] == "error"


async def test_query_over_the_socket() -> None:
    async with server() as (address, _), ws_client(address) as c:
        await c.init()
        await c.subscribe("q", "{ __typename }")
        assert await c.receive() == {
            "id": "q",
            "type": "next",
            "payload": {"data": {"__typename": "Query"}},
        }
        assert await c.receive() == {"id": "q", "type": "complete"}


async def test_two_subscriptions_in_order_without_loss() -> None:
    count = 1000
    async with server() as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("a", ROOM, {"room": "a"})
        await c.subscribe("b", ROOM, {"room": "b"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)

        async def publish() -> None:
            for i in range(count):
                for room in ("a", "b"):
                    await manager.publish(
                        f"room:{room}", {"id": str(i), "room_id": room, "text": room}
                    )

        received: dict[str, list[int]] = {"a": [], "b": []}

        async def consume() -> None:
            while len(received["a"]) + len(received["b"]) < 2 * count:
                message = await c.receive()
                assert message["type"] == "next"
                data = message["payload"]["data"]["messagePosted"]
                assert data["text"] == message["id"]
                received[message["id"]].append(int(data["id"]))

        await asyncio.gather(publish(), consume())
        assert received == {"a": list(range(count)), "b": list(range(count))}


async def test_tenant_isolation_through_on_connect() -> None:
    async with (
        server() as (address, manager),
        ws_client(address) as alice,
        ws_client(address) as bob,
    ):
        await alice.init({"token": "alice"})
        await bob.init({"token": "bob"})
        await alice.subscribe("1", ROOM, {"room": "r"})
        await bob.subscribe("1", ROOM, {"room": "r"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        assert (
            await manager.publish(
                "room:r", {"id": "1", "room_id": "r", "text": "acme only"}, tenant_id="acme"
            )
            == 1
        )
        assert await manager.publish("room:r", {"id": "2", "room_id": "r", "text": "all"}) == 2
        assert (await alice.receive())["payload"]["data"]["messagePosted"]["id"] == "1"
        assert (await bob.receive())["payload"]["data"]["messagePosted"]["id"] == "2"


async def test_subscription_limit() -> None:
    async with server(max_subscriptions=2) as (address, manager), ws_client(address) as c:
        await c.init()
        for op in ("1", "2", "3"):
            await c.subscribe(op, ROOM, {"room": op})
        error = await c.receive()
        assert error["id"] == "3"
        assert error["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        assert manager.get_metrics()["subscribers"] == 2


async def test_subscription_limit_counts_live_operations_only() -> None:
    options = {"max_subscriptions": 2, "max_queue": 2}
    async with server(**options) as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("a", ROOM, {"room": "a"})
        await c.subscribe("b", ROOM, {"room": "b"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        # Operations the server ended (here by falling behind, a queue of two overflowed) free
        # their place, again and again, without the connection keeping track of more than a
        # few of them.
        for n in range(10):
            victim = f"r{n - 1}" if n else "a"
            flood(
                manager,
                f"room:{victim}",
                lambda i, text, victim=victim: {"id": str(i), "room_id": victim, "text": text},
            )
            ended = await until_ended(c)
            assert (ended[-1]["id"], ended[-1]["type"]) == (victim, "error")
            await c.subscribe(f"r{n}", ROOM, {"room": f"r{n}"})
            await until(lambda: manager.get_metrics()["subscribers"] == 2)
        (connection,) = manager.connections
        assert connection.live_count == 2  # ... and the ended ones are pruned as they go
        assert manager.get_metrics()["active_subscriptions"] == 2
        await c.subscribe("over", ROOM, {"room": "over"})
        error = await c.receive()
        assert (error["id"], error["payload"][0]["extensions"]["code"]) == (
            "over",
            "TOO_MANY_SUBSCRIPTIONS",
        )
        # ... and so do those the client completes.
        await c.send({"id": "b", "type": "complete"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await c.subscribe("c", ROOM, {"room": "c"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)


# --- lifecycle ------------------------------------------------------------------------------


async def test_disconnect_releases_everything() -> None:
    async with server() as (address, manager):
        async with ws_client(address) as c:
            await c.init()
            for op in range(10):
                await c.subscribe(str(op), ROOM, {"room": str(op)})
            await until(lambda: manager.get_metrics()["subscribers"] == 10)
        await until(lambda: manager.get_metrics()["active_connections"] == 0)
        metrics = manager.get_metrics()
        assert (metrics["subscribers"], metrics["channels"], metrics["queued_frames"]) == (0, 0, 0)
        assert not manager.connections


async def test_shutdown_completes_operations_and_closes_1001() -> None:
    app, manager = make_app()
    async with running_server(app) as address, ws_client(address) as c:
        await c.init()
        await c.subscribe("1", ROOM, {"room": "1"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.stop()
        assert await c.receive() == {"id": "1", "type": "complete"}
        assert await c.closed_with() == (1001, "Server shutting down")
    assert manager.get_metrics()["active_connections"] == 0


# --- HTTP -----------------------------------------------------------------------------------


async def test_post_queries_and_introspection() -> None:
    async with server() as (address, manager), httpx.AsyncClient() as http:
        response = await http.post(f"http://{address}/graphql", json={"query": "{ __typename }"})
        assert response.json() == {"data": {"__typename": "Query"}}
        response = await http.post(
            f"http://{address}/graphql",
            json={"query": "{ __schema { subscriptionType { fields { name } } } }"},
        )
        names = {
            f["name"] for f in response.json()["data"]["__schema"]["subscriptionType"]["fields"]
        }
        assert names == {"messagePosted", "counter"}
        response = await http.post(f"http://{address}/graphql", json={"query": ROOM})
        assert response.status_code == 400
        response = await http.post(f"http://{address}/graphql", content=b"nope")
        assert response.status_code == 400
    assert "messagePosted(roomId: String!): Message" in manager.print_schema()


async def test_a_tight_publish_loop_does_not_lag_subscribers() -> None:
    count = 3000  # three times the default queue bound
    async with server() as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", "subscription { counter }")
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        for n in range(count):
            await manager.publish("counter", {"n": n})
        received = [(await c.receive())["payload"]["data"]["counter"] for _ in range(count)]
        assert received == list(range(count))
        assert manager.get_metrics()["queue_overflows"] == 0


# --- ordering against the client's complete -----------------------------------------------


async def test_no_next_is_sent_after_the_clients_complete_is_handled() -> None:
    manager = SubscriptionManager(subscriptions=registry.fields)
    socket = GatedSocket()
    handler = socket.transport = WebSocketTransport(
        manager, socket, options=ProtocolOptions(ping_interval=None)
    )
    task = asyncio.create_task(handler.run())
    await socket.incoming.put(json.dumps({"type": "connection_init"}))
    payload = {"query": "subscription { counter }"}
    await socket.incoming.put(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    await until(lambda: manager.get_metrics()["subscribers"] == 1)
    socket.gate.clear()  # the socket stops taking frames...
    for n in range(3):  # ...while three events queue up for the operation
        manager.executor.publish_event("e", "counter", {"n": n})
    await until(lambda: manager.get_metrics()["frames_sent"] == 3)  # the sender took them
    await socket.incoming.put(json.dumps({"id": "1", "type": "complete"}))
    for _ in range(20):
        await asyncio.sleep(0)
    socket.gate.set()
    await until(lambda: manager.get_metrics()["subscribers"] == 0)
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    nexts = [(m["payload"], live) for m, live in socket.sent if m.get("type") == "next"]
    assert nexts == [({"data": {"counter": n}}, True) for n in range(3)]


async def test_shutdown_completes_only_the_operations_still_live() -> None:
    app, manager = make_app(max_queue=2)
    async with running_server(app) as address, ws_client(address) as c:
        await c.init()
        await c.subscribe("lagging", ROOM, {"room": "a"})
        await c.subscribe("live", ROOM, {"room": "b"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        flood(manager, "room:a", lambda n, text: {"id": str(n), "room_id": "a", "text": text})
        ended = await until_ended(c)
        assert ended[-1]["id"] == "lagging" and ended[-1]["type"] == "error"
        assert len(ended) >= 3  # the queue of two overflowed
        await manager.stop()
        assert await c.receive() == {"id": "live", "type": "complete"}
        assert await c.closed_with() == (1001, "Server shutting down")
