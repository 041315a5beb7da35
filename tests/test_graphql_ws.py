"""The legacy graphql-ws protocol (subscriptions-transport-ws): every rule over real WebSockets
(uvicorn on 127.0.0.1), hypothesis feeding the protocol garbled messages, and the real
JavaScript clients (SubscriptionClient and Apollo's WebSocketLink, from tests/js) driven by
node against a server of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from gql import Client as GqlClient
from gql import gql
from gql.transport.websockets import WebsocketsTransport
from helpers import (
    Client,
    GatedSocket,
    NodeClient,
    flood,
    js_clients,
    node_client,
    protocol_app,
    running_server,
    until,
    until_ended,
    ws_client,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from fraiseql_fastapi import ConnectionContext, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction import CloseCode, ProtocolOptions, WebSocketTransport
from fraiseql_fastapi.protocols.graphql_ws import (
    ConnectionTerminate,
    GraphQLWSProtocol,
    InvalidMessage,
    MessageType,
    Start,
    Stop,
    parse_message,
)

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()


@dataclass
class Message:
    """A chat message."""

    id: str
    room_id: str
    text: str


@dataclass
class Identity:
    """Whom the connection acts for, as its resolver sees it."""

    user: str | None
    tenant: str | None
    token: str | None


@subscription(channel="room:{room_id}", registry=registry)
async def message_posted(event: Any, room_id: str, context: Any) -> Message | None:
    """New messages in a room."""
    return Message(id=event.data["id"], room_id=event.data["room_id"], text=event.data["text"])


@subscription(registry=registry, channel="counter")
def counter(event: Any) -> int:
    """A number per event."""
    return int(event.data["n"])


@subscription(registry=registry, channel="whoami")
def whoami(event: Any, context: ConnectionContext) -> Identity:
    """Echoes the connection's context (what `on_connect` made of `connectionParams`)."""
    return Identity(
        user=context.user_id, tenant=context.tenant_id, token=context.claims.get("token")
    )


@subscription(registry=registry, channel="fails")
def fails(event: Any) -> int | None:
    """A resolver that raises, with a secret in its message."""
    raise RuntimeError("postgres://admin:secret@db")


TOKENS: dict[str, ConnectionContext] = {
    "alice": ConnectionContext(user_id="alice", tenant_id="acme", ack_payload={"hello": "alice"}),
    "bob": ConnectionContext(user_id="bob", tenant_id="globex"),
}

#: Every `connection_init` payload `authenticate` was given, in order.
init_payloads: list[Any] = []


def authenticate(payload: Any, websocket: Any) -> Any:
    init_payloads.append(payload)
    token = (payload or {}).get("token")
    if token == "forbidden":
        return False
    if token == "raises":
        raise PermissionError("token revoked by admin@internal")
    if token in TOKENS:
        return TOKENS[token]
    if token:
        return {"user_id": token, "tenant_id": "acme", "token": token}
    return True


ROOM = "subscription ($room: String!) { messagePosted(roomId: $room) { id text } }"
LEGACY = ["graphql-ws"]


def make_app(max_queue: int = 1000, **options: Any) -> tuple[FastAPI, SubscriptionManager]:
    return protocol_app(
        registry.fields,
        authenticate,
        max_queue,
        **{**{"connection_init_timeout": 0.5, "keepalive_interval": None}, **options},
    )


@contextlib.asynccontextmanager
async def server(
    max_queue: int = 1000, **options: Any
) -> AsyncIterator[tuple[str, SubscriptionManager]]:
    app, manager = make_app(max_queue, **options)
    async with running_server(app) as address:
        yield address, manager


@contextlib.asynccontextmanager
async def legacy(address: str) -> AsyncIterator[Client]:
    async with ws_client(address, subprotocols=LEGACY) as client:
        assert client.ws.subprotocol == "graphql-ws"
        yield client


async def start(
    client: Client, op_id: str, query: str, variables: dict[str, Any] | None = None, **extra: Any
) -> None:
    payload: dict[str, Any] = {"query": query, **extra}
    if variables is not None:
        payload["variables"] = variables
    await client.send({"id": op_id, "type": "start", "payload": payload})


async def nothing_more(client: Client, timeout: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await client.receive(timeout=timeout)


async def received_until_closed(client: Client) -> tuple[list[Any], int | None, str]:
    """Every message until the server closes, and the close code and reason."""
    messages: list[Any] = []
    try:
        while True:
            messages.append(json.loads(await asyncio.wait_for(client.ws.recv(), 5)))
    except ConnectionClosed as closed:
        received = closed.rcvd
        code, reason = (received.code, received.reason) if received else (None, "")
    return messages, code, reason


def post(room: str, n: int, text: str = "") -> dict[str, Any]:
    return {"id": str(n), "room_id": room, "text": text}


# --- choosing the protocol ------------------------------------------------------------------


async def test_both_protocols_on_one_endpoint_by_first_choice() -> None:
    async with server() as (address, _):
        for offered, chosen in [
            (["graphql-ws"], "graphql-ws"),
            (["graphql-transport-ws"], "graphql-transport-ws"),
            (["graphql-ws", "graphql-transport-ws"], "graphql-ws"),
            (["mqtt", "graphql-transport-ws", "graphql-ws"], "graphql-transport-ws"),
        ]:
            async with ws_client(address, subprotocols=offered) as c:
                assert c.ws.subprotocol == chosen
                assert await c.init() == {"type": "connection_ack"}


@pytest.mark.parametrize(
    ("options", "off", "on"),
    [
        ({"graphql_ws": False}, "graphql-ws", "graphql-transport-ws"),
        ({"graphql_transport_ws": False}, "graphql-transport-ws", "graphql-ws"),
    ],
)
async def test_each_protocol_can_be_turned_off(options: dict[str, bool], off: str, on: str) -> None:
    async with server(**options) as (address, manager):
        async with ws_client(address, subprotocols=[off]) as c:
            assert c.ws.subprotocol is None
            assert await c.closed_with() == (4406, "Subprotocol not acceptable")
        async with ws_client(address, subprotocols=[off, on]) as c:
            assert c.ws.subprotocol == on
            assert await c.init() == {"type": "connection_ack"}
    assert manager.connections_closed[4406] == 1


# --- the handshake ----------------------------------------------------------------------------


async def test_ack_then_keepalive_at_once_and_every_interval() -> None:
    async with server(keepalive_interval=0.05) as (address, _), legacy(address) as c:
        assert await c.init() == {"type": "connection_ack"}
        assert [await c.receive(timeout=1) for _ in range(4)] == [{"type": "ka"}] * 4


async def test_no_keepalive_when_turned_off() -> None:
    async with server(keepalive_interval=None) as (address, _), legacy(address) as c:
        assert await c.init() == {"type": "connection_ack"}
        await nothing_more(c, 0.3)


async def test_no_keepalive_before_the_ack() -> None:
    async with server(keepalive_interval=0.02) as (address, _), legacy(address) as c:
        await nothing_more(c, 0.2)
        assert await c.init() == {"type": "connection_ack"}


async def test_ack_payload_and_connection_params_reach_on_connect() -> None:
    init_payloads.clear()
    async with server() as (address, _), legacy(address) as c:
        assert await c.init({"token": "alice", "extra": [1]}) == {
            "type": "connection_ack",
            "payload": {"hello": "alice"},
        }
    assert init_payloads == [{"token": "alice", "extra": [1]}]


@pytest.mark.parametrize("token", ["forbidden", "raises"])
async def test_refusal_is_connection_error_then_4403(token: str) -> None:
    async with server() as (address, manager), legacy(address) as c:
        await c.send({"type": "connection_init", "payload": {"token": token}})
        messages, code, reason = await received_until_closed(c)
    # No detail of why (the PermissionError's text stays on the server).
    assert messages == [{"type": "connection_error", "payload": {"message": "Forbidden"}}]
    assert (code, reason) == (4403, "Forbidden")
    assert manager.connections_closed[4403] == 1


async def test_init_timeout() -> None:
    async with server(connection_init_timeout=0.1) as (address, _), legacy(address) as c:
        assert await c.closed_with() == (4408, "Connection initialisation timeout")


async def test_second_init_is_refused() -> None:
    async with server() as (address, _), legacy(address) as c:
        await c.init({"token": "alice"})
        await c.send({"type": "connection_init", "payload": {"token": "bob"}})
        assert await c.closed_with() == (4429, "Too many initialisation requests")


@pytest.mark.parametrize("query", [ROOM, "{ __typename }", "subscription { whoami { user } }"])
async def test_start_before_init_is_refused_and_never_executed(query: str) -> None:
    """Strawberry's CVE-2026-35526: the reference server runs a `start` without init."""
    async with server() as (address, manager), legacy(address) as c:
        await start(c, "1", query, {"room": "1"})
        messages, code, reason = await received_until_closed(c)
        assert (messages, code, reason) == ([], 4401, "Unauthorized")
        assert manager.get_metrics()["subscriptions_registered"] == 0
        assert await manager.publish("whoami", {}) == 0


async def test_start_right_after_init_waits_for_on_connect() -> None:
    """SubscriptionClient sends `start` right behind `connection_init`, before any ack."""
    async with server() as (address, manager), legacy(address) as c:
        await c.send({"type": "connection_init", "payload": {"token": "carol"}})
        await start(c, "1", "subscription { whoami { user tenant token } }")
        assert await c.receive() == {"type": "connection_ack"}
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("whoami", {})
        assert await c.receive() == {
            "id": "1",
            "type": "data",
            "payload": {"data": {"whoami": {"user": "carol", "tenant": "acme", "token": "carol"}}},
        }


# --- invalid input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "Message is not valid JSON"),
        ("[1, 2]", "Message must be a JSON object"),
        ('{"id": "1"}', "Message must have a string 'type'"),
        ('{"type": 3}', "Message must have a string 'type'"),
        ('{"type": "nope"}', 'Unknown message type "nope"'),
        ('{"type": "subscribe", "id": "1"}', 'Unknown message type "subscribe"'),
        ('{"type": "data", "id": "1", "payload": {}}', 'Unexpected message of type "data"'),
        ('{"type": "ka"}', 'Unexpected message of type "ka"'),
        ('{"type": "connection_error"}', 'Unexpected message of type "connection_error"'),
        ('{"type": "start", "payload": {"query": "{ a }"}}', "non-empty string 'id'"),
        ('{"type": "start", "id": 1, "payload": {"query": "{ a }"}}', "non-empty string 'id'"),
        ('{"type": "start", "id": "", "payload": {"query": "{ a }"}}', "non-empty string 'id'"),
        ('{"type": "start", "id": "1"}', "object 'payload'"),
        ('{"type": "start", "id": "1", "payload": {"query": 1}}', "'payload.query'"),
        (
            '{"type": "start", "id": "1", "payload": {"query": "{ a }", "variables": [1]}}',
            "'payload.variables'",
        ),
        (
            '{"type": "start", "id": "1", "payload": {"query": "{ a }", "operationName": 1}}',
            "'payload.operationName'",
        ),
        ('{"type": "stop"}', "non-empty string 'id'"),
    ],
)
async def test_invalid_messages_close_4400(message: str, reason: str) -> None:
    async with server() as (address, _), legacy(address) as c:
        await c.init()
        await c.ws.send(message)
        code, text = await c.closed_with()
        assert code == 4400
        assert reason in text


async def test_invalid_init_payload_closes_4400() -> None:
    async with server() as (address, _), legacy(address) as c:
        await c.send({"type": "connection_init", "payload": "token"})
        code, text = await c.closed_with()
        assert (code, "'payload' must be an object" in text) == (4400, True)


async def test_binary_messages_close_4400() -> None:
    async with server() as (address, _), legacy(address) as c:
        await c.init()
        await c.ws.send(b"\x00\x01")
        assert await c.closed_with() == (4400, "Binary messages are not supported")


async def test_message_size_limit() -> None:
    async with server(max_message_size=100) as (address, _), legacy(address) as c:
        await c.init()
        await start(c, "1", ROOM + " " * 200, {"room": "1"})
        assert await c.closed_with() == (1009, "Message too big")


async def test_parse_ignores_extra_properties_and_accepts_nulls() -> None:
    # What Apollo's WebSocketLink sends: operationName null, extensions, no variables.
    message = parse_message(
        '{"id":"1","type":"start","payload":{"query":"{ a }","operationName":null,'
        '"variables":null,"extensions":{},"other":1}}'
    )
    assert message == Start(id="1", query="{ a }", operation_name=None, variables=None)
    assert parse_message('{"type": "stop", "id": "1", "payload": 1}') == Stop("1")
    assert parse_message('{"type": "connection_terminate", "payload": null}') == (
        ConnectionTerminate()
    )
    with pytest.raises(InvalidMessage):
        parse_message('{"type": "start", "id": "1", "payload": {"query": "' + "[" * 2000 + '"}')
    with pytest.raises(InvalidMessage):
        parse_message("[" * 5000)


# --- operations -------------------------------------------------------------------------------


async def test_subscription_data_stop_complete() -> None:
    async with server() as (address, manager), legacy(address) as c:
        await c.init()
        await start(c, "1", ROOM, {"room": "42"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        assert await manager.publish("room:42", post("42", 1, "hi")) == 1
        assert await c.receive() == {
            "id": "1",
            "type": "data",
            "payload": {"data": {"messagePosted": {"id": "1", "text": "hi"}}},
        }
        await c.send({"id": "1", "type": "stop"})
        assert await c.receive() == {"id": "1", "type": "complete"}
        assert manager.get_metrics()["subscribers"] == 0
        assert await manager.publish("room:42", post("42", 2)) == 0
        await nothing_more(c)
        # The id is reusable after stop.
        await start(c, "1", ROOM, {"room": "42"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room:42", post("42", 3))
        assert (await c.receive())["payload"]["data"]["messagePosted"]["id"] == "3"


async def test_stop_of_an_unknown_id_is_ignored() -> None:
    async with server() as (address, _), legacy(address) as c:
        await c.init()
        await c.send({"id": "zzz", "type": "stop"})
        await start(c, "q", "{ __typename }")
        assert await c.receive() == {
            "id": "q",
            "type": "data",
            "payload": {"data": {"__typename": "Query"}},
        }
        assert await c.receive() == {"id": "q", "type": "complete"}


async def test_validation_errors_are_error_messages_and_keep_the_connection() -> None:
    async with server() as (address, manager), legacy(address) as c:
        await c.init()
        await start(c, "1", "subscription { nope }")
        error = await c.receive()
        assert (error["id"], error["type"]) == ("1", "error")
        assert isinstance(error["payload"], list)
        assert "nope" in error["payload"][0]["message"]
        assert "locations" in error["payload"][0]
        await start(c, "2", ROOM, {"room": 42})  # wrong variable type
        error = await c.receive()
        assert (error["type"], "$room" in error["payload"][0]["message"]) == ("error", True)
        await start(c, "3", "subscription {")  # syntax error
        assert (await c.receive())["type"] == "error"
        # No `complete` after an error; the connection goes on.
        await start(c, "4", ROOM, {"room": "1"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room:1", post("1", 9))
        assert (await c.receive())["id"] == "4"


async def test_operation_name_selects() -> None:
    query = (
        "subscription A { counter } "
        "subscription B ($room: String!) { messagePosted(roomId: $room) { text } }"
    )
    async with server() as (address, manager), legacy(address) as c:
        await c.init()
        await start(c, "1", query, {"room": "9"}, operationName="B")
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room:9", post("9", 1, "b"))
        assert (await c.receive())["payload"] == {"data": {"messagePosted": {"text": "b"}}}
        await start(c, "2", query)
        assert (await c.receive())["type"] == "error"


async def test_query_over_the_socket() -> None:
    async with server() as (address, _), legacy(address) as c:
        await c.init()
        await start(c, "q", "query Q { __typename }", operationName="Q")
        assert await c.receive() == {
            "id": "q",
            "type": "data",
            "payload": {"data": {"__typename": "Query"}},
        }
        assert await c.receive() == {"id": "q", "type": "complete"}


async def test_a_start_for_a_live_id_replaces_it() -> None:
    async with server() as (address, manager), legacy(address) as c:
        await c.init()
        await start(c, "1", ROOM, {"room": "old"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await start(c, "1", ROOM, {"room": "new"})
        await until(lambda: manager.get_metrics()["subscriptions_registered"] == 2)
        assert manager.get_metrics()["subscribers"] == 1
        assert await manager.publish("room:old", post("old", 1)) == 0
        assert await manager.publish("room:new", post("new", 2)) == 1
        # No `complete` for the old one, which the client would take for the new one's end.
        assert (await c.receive())["payload"]["data"]["messagePosted"]["id"] == "2"


async def test_resolver_errors_are_masked_and_the_subscription_goes_on() -> None:
    async with server() as (address, manager), legacy(address) as c:
        await c.init()
        await start(c, "1", "subscription { fails }")
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        for _ in range(2):
            await manager.publish("fails", {})
            message = await c.receive()
            assert message["type"] == "data"
            assert message["payload"]["data"] == {"fails": None}
            assert message["payload"]["errors"][0]["message"] == "Internal server error"
            assert "secret" not in json.dumps(message)
        assert manager.get_metrics()["subscribers"] == 1


async def test_many_events_in_order_on_two_subscriptions() -> None:
    count = 500
    async with server() as (address, manager), legacy(address) as c:
        await c.init()
        await start(c, "a", ROOM, {"room": "a"})
        await start(c, "b", ROOM, {"room": "b"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        for i in range(count):
            for room in ("a", "b"):
                await manager.publish(f"room:{room}", post(room, i, room))
        received: dict[str, list[int]] = {"a": [], "b": []}
        for _ in range(2 * count):
            message = await c.receive()
            assert message["type"] == "data"
            received[message["id"]].append(int(message["payload"]["data"]["messagePosted"]["id"]))
        assert received == {"a": list(range(count)), "b": list(range(count))}


async def test_tenant_isolation_through_on_connect() -> None:
    async with server() as (address, manager), legacy(address) as alice, legacy(address) as bob:
        await alice.init({"token": "alice"})
        await bob.init({"token": "bob"})
        await start(alice, "1", ROOM, {"room": "r"})
        await start(bob, "1", ROOM, {"room": "r"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        assert await manager.publish("room:r", post("r", 1), tenant_id="acme") == 1
        assert await manager.publish("room:r", post("r", 2), tenant_id="globex") == 1
        assert await manager.publish("room:r", post("r", 3), tenant_id="initech") == 0
        assert await manager.publish("room:r", post("r", 4)) == 2
        ids = {
            name: [(await c.receive())["payload"]["data"]["messagePosted"]["id"] for _ in range(2)]
            for name, c in (("alice", alice), ("bob", bob))
        }
        assert ids == {"alice": ["1", "4"], "bob": ["2", "4"]}
        await nothing_more(alice)
        await nothing_more(bob)


async def test_subscription_limit() -> None:
    async with server(max_subscriptions=2) as (address, manager), legacy(address) as c:
        await c.init()
        for op in ("1", "2", "3"):
            await start(c, op, ROOM, {"room": op})
        error = await c.receive()
        assert (error["id"], error["type"]) == ("3", "error")
        assert error["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        assert manager.get_metrics()["subscribers"] == 2
        # A stopped one frees its place.
        await c.send({"id": "1", "type": "stop"})
        assert await c.receive() == {"id": "1", "type": "complete"}
        await start(c, "3", ROOM, {"room": "3"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)


async def test_events_lagged_is_an_error_and_frees_the_id() -> None:
    async with server(max_queue=2) as (address, manager), legacy(address) as c:
        await c.init()
        await start(c, "1", ROOM, {"room": "r"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        flood(manager, "room:r", lambda n, text: post("r", n, text))
        *data, error = await until_ended(c, "data")
        # What was sent before the queue of two overflowed, in order, then the error.
        assert len(data) >= 2
        assert [m["payload"]["data"]["messagePosted"]["id"] for m in data] == [
            str(n) for n in range(len(data))
        ]
        assert error["type"] == "error" and error["id"] == "1"
        assert error["payload"][0]["extensions"]["code"] == "EVENTS_LAGGED"
        assert manager.get_metrics()["subscribers"] == 0
        # The client may stop it still (nothing to complete) and start it again.
        await c.send({"id": "1", "type": "stop"})
        await start(c, "1", "subscription { counter }")
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("counter", {"n": 7})
        assert await c.receive() == {"id": "1", "type": "data", "payload": {"data": {"counter": 7}}}


# --- lifecycle --------------------------------------------------------------------------------


async def test_connection_terminate_closes_1000_and_releases_everything() -> None:
    async with server() as (address, manager), legacy(address) as c:
        await c.init()
        await start(c, "1", ROOM, {"room": "1"})
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await c.send({"type": "connection_terminate"})
        assert await c.closed_with() == (1000, "Connection terminated")
        await until(lambda: not manager.connections)
        metrics = manager.get_metrics()
        assert (metrics["subscribers"], metrics["active_connections"]) == (0, 0)
        assert manager.connections_closed[1000] == 1


async def test_disconnect_releases_everything() -> None:
    async with server() as (address, manager):
        async with legacy(address) as c:
            await c.init()
            for op in range(10):
                await start(c, str(op), ROOM, {"room": str(op)})
            await until(lambda: manager.get_metrics()["subscribers"] == 10)
        await until(lambda: manager.get_metrics()["active_connections"] == 0)
        metrics = manager.get_metrics()
        assert (metrics["subscribers"], metrics["channels"], metrics["queued_frames"]) == (0, 0, 0)
        assert not manager.connections


async def test_shutdown_completes_operations_and_closes_1001() -> None:
    app, manager = make_app()
    async with running_server(app) as address, legacy(address) as c:
        await c.init()
        await start(c, "1", ROOM, {"room": "1"})
        await start(c, "2", "subscription { counter }")
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        await manager.stop()
        messages, code, reason = await received_until_closed(c)
        assert sorted(messages, key=lambda m: m["id"]) == [
            {"id": "1", "type": "complete"},
            {"id": "2", "type": "complete"},
        ]
        assert (code, reason) == (1001, "Server shutting down")
    assert manager.get_metrics()["active_connections"] == 0


@pytest.mark.parametrize(
    ("subprotocol", "last"),
    [
        ("graphql-ws", {"id": "1", "type": "stop"}),
        ("graphql-transport-ws", {"type": "ping"}),
    ],
)
async def test_a_client_leaving_while_answered_is_no_failure(
    subprotocol: str, last: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """SubscriptionClient.close() sends `stop`s and `connection_terminate` and closes at once:
    the server's `complete` (or `pong`) may meet a socket that is gone. Dropped, not an error."""
    start_type = "start" if subprotocol == "graphql-ws" else "subscribe"
    async with server() as (address, manager):
        for _ in range(20):
            async with ws_client(address, subprotocols=[subprotocol]) as c:
                await c.init()
                payload = {"query": "subscription { counter }"}
                await c.send({"id": "1", "type": start_type, "payload": payload})
                await c.send(last)
                # ... and leaves at once (the close handshake is started by leaving the block)
        await until(lambda: not manager.connections)
    assert CloseCode.INTERNAL_SERVER_ERROR not in manager.connections_closed
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_no_data_is_sent_after_the_clients_stop_is_handled() -> None:
    manager = SubscriptionManager(subscriptions=registry.fields)
    socket = GatedSocket("graphql-ws")
    transport = socket.transport = WebSocketTransport(
        manager, socket, options=ProtocolOptions(keepalive_interval=None)
    )
    task = asyncio.create_task(transport.run())
    await socket.incoming.put(json.dumps({"type": "connection_init"}))
    payload = {"query": "subscription { counter }"}
    await socket.incoming.put(json.dumps({"id": "1", "type": "start", "payload": payload}))
    await until(lambda: manager.get_metrics()["subscribers"] == 1)
    socket.gate.clear()  # the socket stops taking frames...
    for n in range(3):  # ...while three events queue up for the operation
        manager.executor.publish_event("e", "counter", {"n": n})
    await until(lambda: manager.get_metrics()["frames_sent"] == 3)  # the sender took them
    await socket.incoming.put(json.dumps({"id": "1", "type": "stop"}))
    for _ in range(20):
        await asyncio.sleep(0)
    socket.gate.set()
    await until(lambda: manager.get_metrics()["subscribers"] == 0)
    await until(lambda: any(m.get("type") == "complete" for m, _ in socket.sent))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    sent = [(m.get("type"), m.get("payload"), live) for m, live in socket.sent]
    assert sent == [
        ("connection_ack", None, False),
        *[("data", {"data": {"counter": n}}, True) for n in range(3)],
        ("complete", None, False),
    ]


# --- hypothesis: garbled input never crashes and gets only what the protocol allows -----------


class RecordingSocket:
    """A `ProtocolSocket` that records what the protocol sends and how it closes; its sends
    take the same lock as `exclusive`, as the WebSocket transport's do."""

    request = None

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed_with: tuple[int, str] | None = None
        self.timers: list[tuple[float, Callable[[], Any]]] = []
        self._lock = asyncio.Lock()

    async def send(self, text: str) -> None:
        async with self._lock:
            if self.closed_with is None:
                self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        if self.closed_with is None:
            self.closed_with = (int(code), reason)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        self.timers.append((delay, callback))
        return asyncio.get_running_loop().call_later(3600, lambda: None)

    def exclusive(self) -> asyncio.Lock:
        return self._lock

    def release_request(self) -> None:
        pass


IDS = st.sampled_from(["1", "2", "", 1, None, "x" * 50])
QUERIES = st.sampled_from(
    [
        "subscription { counter }",
        ROOM,
        "{ __typename }",
        "subscription { nope }",
        "subscription {",
        "subscription { fails }",
        "mutation { x }",
        "",
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
start_payloads = st.fixed_dictionaries(
    {},
    optional={
        "query": QUERIES | json_values,
        "variables": st.sampled_from([None, {}, {"room": "1"}, {"room": 1}, [1]]),
        "operationName": st.sampled_from([None, "A", 1, ""]),
        "extensions": json_values,
    },
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from([t.value for t in MessageType]) | st.text(max_size=8)},
    optional={
        "id": IDS,
        "payload": start_payloads | json_values | st.just({"token": "forbidden"}),
    },
)
texts = (
    messages.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=30)
    | st.sampled_from(['{"type": "connection_init"}', '{"type": "connection_init", "payload": {}}'])
)

SERVER_TYPES = {"connection_ack", "connection_error", "ka", "data", "error", "complete"}
CLOSE_CODES = {1000, 1009, 4400, 4401, 4403, 4429}
fuzz_manager = SubscriptionManager(subscriptions=registry.fields)


def check_sent(text: str) -> None:
    message = json.loads(text)
    assert isinstance(message, dict)
    assert message["type"] in SERVER_TYPES
    if message["type"] in {"data", "error", "complete"}:
        assert isinstance(message["id"], str) and message["id"]
    if message["type"] == "error":
        assert isinstance(message["payload"], list)
        assert all(isinstance(error["message"], str) for error in message["payload"])
        assert "secret" not in text
    if message["type"] == "connection_error":
        assert message["payload"] == {"message": "Forbidden"}


async def feed(sequence: list[str], max_subscriptions: int) -> None:
    socket = RecordingSocket()
    connection = fuzz_manager.connect(envelope="graphql-ws")
    options = ProtocolOptions(max_subscriptions=max_subscriptions, max_message_size=200)
    protocol = GraphQLWSProtocol(connection, socket, on_connect=authenticate, options=options)
    try:
        await protocol.opened()
        for text in sequence:
            await protocol.received(text)
            await asyncio.sleep(0)  # let query tasks run
            if socket.closed_with is not None:
                break
        await fuzz_manager.publish("counter", {"n": 1})
        socket.sent.extend(connection.drain())
        for _ in range(5):
            await asyncio.sleep(0)
        if socket.closed_with is None:
            await protocol.shutdown()
    finally:
        protocol.closed()
        connection.close(1000)
    for text in socket.sent:
        check_sent(text)
    assert socket.closed_with is not None
    assert socket.closed_with[0] in CLOSE_CODES | {1001}
    assert connection.live_count == 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sequence=st.lists(texts, max_size=8),
    init_first=st.booleans(),
    max_subscriptions=st.integers(1, 3),
)
def test_garbled_messages_never_crash_and_get_allowed_answers(
    sequence: list[str], init_first: bool, max_subscriptions: int
) -> None:
    if init_first:
        sequence = ['{"type": "connection_init"}', *sequence]
    asyncio.run(feed(sequence, max_subscriptions))
    assert not fuzz_manager.connections


@settings(max_examples=300, deadline=None)
@given(text=texts | st.binary(max_size=30).map(lambda b: b.decode("latin-1")))
def test_parse_message_only_raises_invalid_message(text: str) -> None:
    try:
        message = parse_message(text)
    except InvalidMessage as error:
        assert len(str(error).encode()) <= 123
    else:
        assert type(message).__name__ in {"ConnectionInit", "Start", "Stop", "ConnectionTerminate"}


# --- the real JavaScript clients (node, tests/js) ---------------------------------------------

CLIENTS = ["subscriptions-transport-ws", "apollo"]


@contextlib.asynccontextmanager
async def legacy_client(address: str, client: str, scenario: str) -> AsyncIterator[NodeClient]:
    """tests/js/legacy_client.mjs with `client` playing `scenario`; it must exit with 0."""
    script = node_client("legacy_client.mjs", f"ws://{address}/graphql", client, scenario)
    async with script as node:
        yield node
        code = await asyncio.wait_for(node.process.wait(), 25)
        assert code == 0, await node.stderr()


def js_app() -> tuple[FastAPI, SubscriptionManager]:
    # `ka` flowing during the runs, as in production (the clients' own deadline is 30 s).
    return make_app(keepalive_interval=0.5, connection_init_timeout=5)


@js_clients
@pytest.mark.parametrize("client", CLIENTS)
async def test_js_client_receives_100_of_100_events_in_order(client: str) -> None:
    app, manager = js_app()
    async with running_server(app) as address, legacy_client(address, client, "events") as node:
        await node.expect("started")
        await until(lambda: manager.get_metrics()["subscribers"] == 1, 20)
        for n in range(100):
            assert await manager.publish("counter", {"n": n}) == 1
        done = await node.expect("done")
        assert done["values"] == list(range(100))


@js_clients
@pytest.mark.parametrize("client", CLIENTS)
async def test_js_client_connection_params_reach_on_connect(client: str) -> None:
    init_payloads.clear()
    app, manager = js_app()
    async with running_server(app) as address, legacy_client(address, client, "params") as node:
        await node.expect("started")
        await until(lambda: manager.get_metrics()["subscribers"] == 1, 20)
        assert init_payloads == [{"token": "dave", "client": client}]
        assert await manager.publish("whoami", {}) == 1
        result = await node.expect("data")
        who = result["data"]["whoami"]
        who.pop("__typename", None)  # Apollo asks for it
        assert who == {"user": "dave", "tenant": "acme", "token": "dave"}


@js_clients
@pytest.mark.parametrize("client", CLIENTS)
async def test_js_client_gets_validation_errors_on_its_error_path(client: str) -> None:
    app, manager = js_app()
    async with running_server(app) as address, legacy_client(address, client, "invalid") as node:
        await node.expect("started")
        error = await node.expect("error")
        assert "Cannot query field" in error["message"]
        assert "nope" in error["message"]
        assert manager.get_metrics()["subscriptions_registered"] == 0


@js_clients
@pytest.mark.parametrize("client", CLIENTS)
async def test_js_client_unsubscribe_stops_the_subscription(client: str) -> None:
    app, manager = js_app()
    async with running_server(app) as address, legacy_client(address, client, "stop") as node:
        await node.expect("started")
        await until(lambda: manager.get_metrics()["subscribers"] == 1, 20)
        await manager.publish("counter", {"n": 1})
        assert (await node.expect("data"))["data"] == {"counter": 1}
        await node.expect("unsubscribed")
        await until(lambda: manager.get_metrics()["subscribers"] == 0)
        assert manager.get_metrics()["active_connections"] == 1  # the connection stays
        assert await manager.publish("counter", {"n": 2}) == 0
        await node.tell("exit")
        assert (await node.expect("exited"))["after_unsubscribe"] == 0


@js_clients
@pytest.mark.parametrize("client", CLIENTS)
async def test_js_client_close_ends_the_connection_on_the_server(client: str) -> None:
    app, manager = js_app()
    async with running_server(app) as address, legacy_client(address, client, "dispose") as node:
        await node.expect("started")
        await until(lambda: manager.get_metrics()["subscribers"] == 1, 20)
        await node.tell("close")
        await node.expect("closed")
        await until(lambda: not manager.connections)
        metrics = manager.get_metrics()
        assert (metrics["subscribers"], metrics["active_connections"]) == (0, 0)
        # The client stops its operations, sends connection_terminate and closes.
        assert sum(manager.connections_closed.values()) == 1
        await node.tell("exit")


# --- gql (Python) with its Apollo protocol ---------------------------------------------------


async def test_gql_apollo_protocol_subscribes_and_queries() -> None:
    app, manager = make_app(keepalive_interval=0.2)
    async with running_server(app) as address:
        transport = WebsocketsTransport(
            url=f"ws://{address}/graphql",
            subprotocols=[WebsocketsTransport.APOLLO_SUBPROTOCOL],
            init_payload={"token": "frank"},
            connect_timeout=5,
            ack_timeout=5,
            close_timeout=5,
        )
        async with GqlClient(transport=transport) as session:
            assert await session.execute(gql("{ __typename }")) == {"__typename": "Query"}
            received: list[Any] = []

            async def collect() -> None:
                async for result in session.subscribe(gql("subscription { whoami { user } }")):
                    received.append(result)
                    if len(received) == 3:
                        return

            task = asyncio.create_task(collect())
            await until(lambda: manager.get_metrics()["subscribers"] == 1)
            for _ in range(3):
                await manager.publish("whoami", {})
            await asyncio.wait_for(task, 10)
            await until(lambda: manager.get_metrics()["subscribers"] == 0)  # gql sent stop
        assert received == [{"whoami": {"user": "frank"}}] * 3
        await until(lambda: not manager.connections)
