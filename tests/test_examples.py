"""The example apps end to end over real WebSockets: the FastAPI ticker (publish, burst,
stats, the event bus from the environment), the multi-tenant chat (tokens, tenant isolation,
the page), the Starlette app, GraphiQL in the three, and the custom adapter over the
`websockets` server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from example_modules import load_module
from helpers import Client, running_server, ws_client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from fraiseql_fastapi import EventBusConfig, SubscriptionManager

pytestmark = pytest.mark.anyio

TICKS = "subscription ($ch: String!) { ticks(channel: $ch) { id value } }"
ROOM = "subscription ($room: String!) { messagePosted(roomId: $room) { id author text } }"


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Polls `check` every 10 ms until it is true; fails after `timeout` seconds."""
    for _ in range(int(timeout / 0.01)):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {timeout} s")


async def wait_for_subscribers(manager: SubscriptionManager, count: int) -> None:
    """Waits until the manager counts `count` active subscriptions."""

    async def reached() -> bool:
        return bool(manager.get_metrics()["subscribers"] == count)

    await wait_until(reached)


async def wait_for_stats(http: httpx.AsyncClient, count: int) -> None:
    """Waits until `GET /stats` reports `count` subscribers."""

    async def reached() -> bool:
        return bool((await http.get("/stats")).json()["subscribers"] == count)

    await wait_until(reached)


async def nothing_more(client: Client, seconds: float = 0.2) -> bool:
    """True when no message arrives within `seconds`."""
    try:
        message = await client.receive(timeout=seconds)
    except asyncio.TimeoutError:
        return True
    raise AssertionError(f"unexpected message {message}")


def next_data(message: dict[str, Any], op_id: str = "1") -> Any:
    """The data of a `next` message for `op_id`."""
    assert message["type"] == "next", message
    assert message["id"] == op_id, message
    return message["payload"]["data"]


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """Serves `app`; yields its address and an HTTP client for it."""
    async with (
        running_server(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
    ):
        yield address, http


# --- the FastAPI ticker --------------------------------------------------------------------


def ticker_app() -> Any:
    return load_module("examples/ticker/app.py").create_app(EventBusConfig.memory())


async def test_ticker_countdown_is_a_finite_stream() -> None:
    async with serving(ticker_app()) as (address, _), ws_client(address) as client:
        await client.init()
        await client.subscribe("c", "subscription { countdown(from: 3) }")
        values = [(await client.receive())["payload"]["data"]["countdown"] for _ in range(4)]
        assert values == [3, 2, 1, 0]
        assert await client.receive() == {"id": "c", "type": "complete"}


async def test_ticker_publish_delivers_each_selection_its_shape() -> None:
    async with serving(ticker_app()) as (address, http), ws_client(address) as client:
        assert await client.init() == {"type": "connection_ack"}
        await client.subscribe("1", TICKS, {"ch": "prices"})
        await client.subscribe("2", 'subscription { ticks(channel: "prices") { channel ts } }')
        await client.subscribe("3", TICKS, {"ch": "other"})
        await wait_for_stats(http, 3)

        response = await http.post(
            "/publish", json={"channel": "prices", "data": {"id": 7, "value": 42}}
        )

        assert response.json() == {"delivered": 2}
        by_id = {m["id"]: m for m in [await client.receive(), await client.receive()]}
        assert next_data(by_id["1"]) == {"ticks": {"id": "7", "value": 42}}
        shaped = next_data(by_id["2"], "2")["ticks"]
        assert shaped["channel"] == "prices"
        assert isinstance(shaped["ts"], float)
        assert await nothing_more(client)


async def test_ticker_keeps_a_given_ts() -> None:
    async with serving(ticker_app()) as (address, http), ws_client(address) as client:
        await client.init()
        await client.subscribe("1", 'subscription { ticks(channel: "c") { id ts } }')
        await wait_for_stats(http, 1)
        await http.post("/publish", json={"channel": "c", "data": {"id": "a", "value": 1, "ts": 5}})
        assert next_data(await client.receive()) == {"ticks": {"id": "a", "ts": 5.0}}


async def test_ticker_burst_arrives_complete_and_in_order() -> None:
    async with serving(ticker_app()) as (address, http), ws_client(address) as client:
        await client.init()
        await client.subscribe("1", TICKS, {"ch": "burst"})
        await wait_for_stats(http, 1)

        response = await http.post("/burst", json={"channel": "burst", "count": 300, "rate": 0})

        assert response.json()["published"] == 300
        assert response.json()["seconds"] >= 0
        received = [next_data(await client.receive())["ticks"] for _ in range(300)]
        assert received == [{"id": str(i), "value": i} for i in range(300)]
        assert await nothing_more(client)
        stats = (await http.get("/stats")).json()
        assert stats["subscribers"] == 1
        assert stats["events_published"] == 300
        assert stats["active_connections"] == 1


async def test_ticker_burst_follows_its_rate() -> None:
    async with serving(ticker_app()) as (_, http):
        response = await http.post("/burst", json={"channel": "x", "count": 6, "rate": 50})
        assert response.json()["published"] == 6
        assert response.json()["seconds"] >= 5 / 50


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/publish", {"channel": "c", "data": {"id": "1"}}),
        ("/publish", {"channel": "", "data": {"id": "1", "value": 1}}),
        ("/burst", {"channel": "c", "count": -1}),
        ("/burst", {"channel": "c", "count": 10**9}),
        ("/burst", {"channel": "c", "count": 1, "rate": -1}),
    ],
)
async def test_ticker_refuses_malformed_requests(path: str, body: dict[str, Any]) -> None:
    async with serving(ticker_app()) as (_, http):
        assert (await http.post(path, json=body)).status_code == 422


async def test_ticker_schema_over_post_and_sdl() -> None:
    ticker = load_module("examples/ticker/app.py")
    app = ticker.create_app(EventBusConfig.memory())
    sdl = app.state.manager.print_schema()
    assert "ticks(channel: String!): Tick!" in sdl
    assert "countdown(from: Int!): Int!" in sdl
    for line in ("id: ID!", "channel: String!", "value: Int!", "ts: Float\n"):
        assert line in sdl
    async with serving(app) as (_, http):
        query = "{ __schema { subscriptionType { fields { name } } } }"
        response = await http.post("/graphql", json={"query": query})
    fields = response.json()["data"]["__schema"]["subscriptionType"]["fields"]
    assert [field["name"] for field in fields] == ["ticks", "countdown"]


async def test_ticker_disconnect_releases_everything() -> None:
    async with serving(ticker_app()) as (address, http):
        async with ws_client(address) as client:
            await client.init()
            await client.subscribe("1", TICKS, {"ch": "gone"})
            await wait_for_stats(http, 1)
        await wait_for_stats(http, 0)
        assert (await http.get("/stats")).json()["active_connections"] == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, EventBusConfig.memory()),
        ("memory", EventBusConfig.memory()),
        ("redis://127.0.0.1:6379/0", EventBusConfig.redis("redis://127.0.0.1:6379/0")),
        (
            "postgresql://app@127.0.0.1/app",
            EventBusConfig.postgresql("postgresql://app@127.0.0.1/app"),
        ),
    ],
)
def test_ticker_bus_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: EventBusConfig
) -> None:
    if value is None:
        monkeypatch.delenv("FRAISEQL_EVENT_BUS", raising=False)
    else:
        monkeypatch.setenv("FRAISEQL_EVENT_BUS", value)
    assert load_module("examples/ticker/app.py").bus_from_env() == expected


def test_ticker_refuses_an_unknown_bus() -> None:
    with pytest.raises(ValueError, match="FRAISEQL_EVENT_BUS"):
        load_module("examples/ticker/app.py").bus_from_env("kafka://127.0.0.1")


# --- the chat ------------------------------------------------------------------------------


def chat_app() -> Any:
    return load_module("examples/chat/app.py").create_app(EventBusConfig.memory())


@pytest.mark.parametrize("payload", [{"token": "nobody"}, {}, None])
async def test_chat_refuses_unknown_tokens(payload: dict[str, Any] | None) -> None:
    async with serving(chat_app()) as (address, _), ws_client(address) as client:
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await client.send(message)
        code, _reason = await client.closed_with()
        assert code == 4403


async def join(client: Client, token: str, room: str) -> dict[str, Any]:
    """Initialises with `token` and subscribes to `room`; returns the ack."""
    ack = await client.init({"token": token})
    await client.subscribe("1", ROOM, {"room": room})
    return ack


async def test_chat_isolates_tenants_in_the_same_room() -> None:
    app = chat_app()
    manager = app.state.manager

    def post(http: httpx.AsyncClient, token: str, text: str) -> Awaitable[httpx.Response]:
        headers = {"Authorization": f"Bearer {token}"}
        return http.post("/rooms/lobby/messages", json={"text": text}, headers=headers)

    async with (
        serving(app) as (address, http),
        ws_client(address) as alice,
        ws_client(address) as bob,
        ws_client(address) as carol,
    ):
        ack = await join(alice, "alice-token", "lobby")
        assert ack["payload"] == {"user": "alice", "tenant": "acme"}
        await join(bob, "bob-token", "lobby")
        await join(carol, "carol-token", "lobby")
        await wait_for_subscribers(manager, 3)

        assert (await post(http, "alice-token", "hi acme")).json()["delivered"] == 2
        assert (await post(http, "carol-token", "hi globex")).json()["delivered"] == 1
        assert (await post(http, "bob-token", "hi again")).json()["delivered"] == 2

        # Frames are in publish order per connection: had carol's message reached acme, it would
        # come between these two.
        for client in (alice, bob):
            texts = [next_data(await client.receive())["messagePosted"]["text"] for _ in range(2)]
            assert texts == ["hi acme", "hi again"]
        first = next_data(await carol.receive())["messagePosted"]
        assert (first["author"], first["text"]) == ("carol", "hi globex")
        for client in (alice, bob, carol):
            assert await nothing_more(client)
    assert manager.get_metrics()["events_filtered_tenant"] >= 1


async def test_chat_other_rooms_hear_nothing() -> None:
    app = chat_app()
    async with serving(app) as (address, http), ws_client(address) as alice:
        await join(alice, "alice-token", "kitchen")
        await wait_for_subscribers(app.state.manager, 1)
        response = await http.post(
            "/rooms/lobby/messages",
            json={"text": "elsewhere"},
            headers={"Authorization": "Bearer bob-token"},
        )
        assert response.json()["delivered"] == 0
        assert await nothing_more(alice)


@pytest.mark.parametrize("authorization", [None, "Bearer nobody", "Basic alice-token"])
async def test_chat_posting_needs_a_known_bearer_token(authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with serving(chat_app()) as (_, http):
        response = await http.post("/rooms/lobby/messages", json={"text": "x"}, headers=headers)
    assert response.status_code == 401


async def test_chat_page_speaks_graphql_transport_ws_without_dependencies() -> None:
    async with serving(chat_app()) as (_, http):
        response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'new WebSocket(scheme + location.host + "/graphql", "graphql-transport-ws")' in page
    assert "connection_init" in page
    assert "<script src" not in page
    assert "https://" not in page


# --- Starlette -----------------------------------------------------------------------------


async def test_starlette_app_serves_the_ticker() -> None:
    app = load_module("examples/starlette_app.py").create_app(EventBusConfig.memory())
    async with serving(app) as (address, http), ws_client(address) as client:
        await client.init()
        await client.subscribe("1", TICKS, {"ch": "s"})
        await wait_for_stats(http, 1)

        response = await http.post("/publish", json={"channel": "s", "data": {"id": 1, "value": 2}})

        assert response.json() == {"delivered": 1}
        assert next_data(await client.receive()) == {"ticks": {"id": "1", "value": 2}}
        assert (await http.post("/publish", json={"channel": "s"})).status_code == 422
        post = await http.post("/graphql", json={"query": "{ __typename }"})
        assert post.json() == {"data": {"__typename": "Query"}}


# --- GraphiQL in the example apps ----------------------------------------------------------


@pytest.mark.parametrize(
    "example",
    [
        "examples/ticker/app.py",
        "examples/chat/app.py",
        "examples/starlette_app.py",
        "examples/strawberry/app.py",
    ],
)
@pytest.mark.parametrize("assets", [None, "/static/vendor"])
async def test_examples_serve_graphiql_with_assets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, example: str, assets: str | None
) -> None:
    if assets is None:
        monkeypatch.delenv("FRAISEQL_GRAPHIQL_ASSETS", raising=False)
    else:
        monkeypatch.setenv("FRAISEQL_GRAPHIQL_ASSETS", assets)
    app = load_module(example).create_app(EventBusConfig.memory())
    async with serving(app) as (_, http):
        response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    expected = (
        'src="https://unpkg.com/graphiql@3.8.3/graphiql.min.js"'
        if assets is None
        else 'src="/static/vendor/graphiql/graphiql.min.js"'
    )
    assert expected in response.text


# --- the custom adapter over the websockets server -----------------------------------------


@contextlib.asynccontextmanager
async def custom_server() -> AsyncIterator[tuple[str, SubscriptionManager]]:
    """The custom-adapter server on a free port; yields its address and manager."""
    example = load_module("examples/custom_adapter.py")
    manager = example.create_manager(EventBusConfig.memory())
    async with example.running_server(manager, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"127.0.0.1:{port}", manager


async def test_custom_adapter_serves_the_ticker() -> None:
    async with custom_server() as (address, manager), ws_client(address) as client:
        assert await client.init() == {"type": "connection_ack"}
        await client.subscribe("1", TICKS, {"ch": "demo"})
        await wait_for_subscribers(manager, 1)

        delivered = await manager.publish(
            "demo", {"id": "1", "channel": "demo", "value": 3}, event_type="tick"
        )

        assert delivered == 1
        assert next_data(await client.receive()) == {"ticks": {"id": "1", "value": 3}}
        await client.send({"id": "1", "type": "complete"})
        await wait_for_subscribers(manager, 0)


async def test_custom_adapter_shutdown_completes_and_closes_1001() -> None:
    async with custom_server() as (address, manager), ws_client(address) as client:
        await client.init()
        await client.subscribe("1", TICKS, {"ch": "demo"})
        await wait_for_subscribers(manager, 1)

        await manager.stop()

        assert await client.receive() == {"id": "1", "type": "complete"}
        assert (await client.closed_with())[0] == 1001
        await wait_for_subscribers(manager, 0)


async def test_custom_adapter_negotiates_the_subprotocol() -> None:
    # A client offering no protocol we speak gets no subprotocol, then 4406.
    async with (
        custom_server() as (address, _),
        ws_client(address, subprotocols=["mqtt"]) as client,
    ):
        assert client.ws.subprotocol is None
        assert (await client.closed_with())[0] == 4406
    # The legacy graphql-ws is chosen in the handshake as the handler will speak it.
    async with (
        custom_server() as (address, _),
        ws_client(address, subprotocols=["graphql-ws"]) as client,
    ):
        assert client.ws.subprotocol == "graphql-ws"
        assert await client.init() == {"type": "connection_ack"}


async def test_custom_adapter_serves_only_its_path() -> None:
    async with custom_server() as (address, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://{address}/elsewhere", open_timeout=5):
                pass
    assert refused.value.response.status_code == 404
