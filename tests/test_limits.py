"""Limits, with safe defaults, each answered as the protocol allows and counted: how deep and
how large a document may be, how fast a connection may start operations, and how many
connections and subscriptions a user or tenant may hold in the process. Over real sockets,
plus a property test of how documents are measured."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import build_schema, get_introspection_query, parse, validate
from helpers import COUNTER, counters, flood, protocol_app, running_server, until, ws_client
from hypothesis import given, settings
from hypothesis import strategies as st

from fraiseql_fastapi import SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.limits import Limits
from fraiseql_fastapi.metrics import PrometheusCollector
from fraiseql_fastapi.query_limits import query_limits_rule

pytestmark = pytest.mark.anyio


def on_connect(payload: Any, request: Any) -> Any:
    """`user@tenant` in the payload's token (WebSockets) or the Authorization header (SSE)."""
    token = (payload or {}).get("token") if payload is not None else None
    if payload is None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
    user, _, tenant = (token or "").partition("@")
    return {"user_id": user or None, "tenant_id": tenant or None}


@contextlib.asynccontextmanager
async def server(
    limits: Limits | None = None, **options: Any
) -> AsyncIterator[tuple[str, SubscriptionManager]]:
    app, manager = protocol_app(
        counters.fields,
        on_connect,
        limits=limits,
        **{"ping_interval": None, "keepalive_interval": None, **options},
    )
    async with running_server(app) as address:
        yield address, manager


def limited(manager: SubscriptionManager) -> dict[str, int]:
    counts: dict[str, int] = manager.get_metrics()["limited"]
    return counts


def nested(depth: int) -> str:
    """An introspection query `depth` fields deep."""
    inner = "name"
    for _ in range(depth - 3):
        inner = f"ofType {{ {inner} }}"
    return f"{{ __schema {{ queryType {{ {inner} }} }} }}"


# ----- documents ---------------------------------------------------------------------------------


async def test_a_document_too_deep_is_an_error_for_its_operation() -> None:
    async with server(Limits(max_query_depth=6)) as (address, manager):
        async with ws_client(address) as client:
            await client.init({"token": "ann@acme"})
            await client.subscribe("1", nested(7))
            error = await client.receive()
            assert error["type"] == "error"
            assert error["payload"][0]["extensions"] == {"code": "QUERY_TOO_DEEP"}
            assert "7 fields deep; at most 6" in error["payload"][0]["message"]
            await client.subscribe("2", nested(6))  # at the limit: runs
            assert (await client.receive())["type"] == "next"
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            answer = await http.post("/graphql", json={"query": nested(8)})
        assert answer.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"
        assert limited(manager) == {"query_depth": 2}


async def test_fragments_count_where_they_are_spread() -> None:
    """Ten fragments each spreading the next one twice: 2,046 fields in a short document,
    measured without expanding it."""
    fragments = "".join(
        f"fragment F{i} on __Type {{ name ...F{i + 1} ...F{i + 1} }} " for i in range(10)
    )
    query = "{ __schema { types { ...F0 } } } " + fragments + "fragment F10 on __Type { name }"
    async with (
        server(Limits(max_query_fields=500)) as (address, manager),
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        answer = (await http.post("/graphql", json={"query": query})).json()
        error = answer["errors"][0]
        assert error["extensions"] == {"code": "QUERY_TOO_LARGE"}
        assert "2049 fields; at most 500" in error["message"]
        assert limited(manager) == {"query_fields": 1}


async def test_the_defaults_let_graphiql_introspect() -> None:
    async with server() as (address, manager), httpx.AsyncClient(base_url=f"http://{address}") as h:
        answer = await h.post("/graphql", json={"query": get_introspection_query(True)})
        assert "errors" not in answer.json()
        assert answer.json()["data"]["__schema"]["subscriptionType"]["name"] == "Subscription"
        assert limited(manager) == {}


def test_a_fragment_cycle_is_graphql_cores_error_not_a_crash() -> None:
    schema = build_schema("type Query { me: User } type User { name: String friend: User }")
    document = parse(
        "{ me { ...A } } fragment A on User { friend { ...B } } fragment B on User { ...A }"
    )
    counts: collections.Counter[str] = collections.Counter()
    assert validate(schema, document, [query_limits_rule(3, 10, counts)]) == []


# A tree of selections: a leaf `x`, or a field `a`/`b`/`c` with its children.
Tree = Any
trees: st.SearchStrategy[Tree] = st.recursive(
    st.just("x"),
    lambda children: st.tuples(st.sampled_from("abc"), st.lists(children, min_size=1, max_size=3)),
    max_leaves=30,
)
NODES = build_schema("type Query { node: Node } type Node { a: Node b: Node c: Node x: Int }")


def measured(tree: Tree) -> tuple[int, int]:
    """(depth, fields) of a tree, counted plainly."""
    if tree == "x":
        return 1, 1
    below = [measured(child) for child in tree[1]]
    return 1 + max(d for d, _ in below), 1 + sum(f for _, f in below)


def printed(tree: Tree, fragments: list[str] | None) -> str:
    """The selection as text; with `fragments`, every field's children in a fragment."""
    if tree == "x":
        return "x"
    inner = " ".join(printed(child, fragments) for child in tree[1])
    if fragments is None:
        return f"{tree[0]} {{ {inner} }}"
    name = f"F{len(fragments)}"
    fragments.append("")
    fragments[int(name[1:])] = f"fragment {name} on Node {{ {inner} }}"
    return f"{tree[0]} {{ ...{name} }}"


@given(trees)
@settings(max_examples=200, deadline=None)
def test_the_measure_of_a_document_is_its_depth_and_fields(tree: Tree) -> None:
    """With fragments or inline, a document is as deep and as large as its fields are; at the
    limits it passes, one below either it is refused."""
    depth, fields = measured(tree)
    depth, fields = depth + 1, fields + 1  # the root field `node`
    fragments: list[str] = []
    with_fragments = f"{{ node {{ {printed(tree, fragments)} }} }} " + " ".join(fragments)
    for text in (f"{{ node {{ {printed(tree, None)} }} }}", with_fragments):
        document = parse(text)

        def codes(max_depth: int, max_fields: int, document: Any = document) -> list[str]:
            rule = query_limits_rule(max_depth, max_fields, collections.Counter())
            return [e.extensions["code"] for e in validate(NODES, document, [rule])]  # type: ignore[index]

        assert codes(depth, fields) == []
        assert codes(depth - 1, fields) == ["QUERY_TOO_DEEP"]
        assert codes(depth, fields - 1) == ["QUERY_TOO_LARGE"]


# ----- how fast a connection starts operations --------------------------------------------------


async def test_operations_past_the_rate_are_refused_then_an_abusive_client_is_closed() -> None:
    async with (
        server(subscribe_rate=2, subscribe_burst=3) as (address, manager),
        ws_client(address) as client,
    ):
        await client.init({"token": "ann@acme"})
        for n in range(3):
            await client.subscribe(str(n), COUNTER)
        await until(lambda: manager.get_metrics()["subscribers"] == 3)
        await client.subscribe("3", COUNTER)
        refused = await client.receive()
        assert refused["id"] == "3" and refused["type"] == "error"
        assert refused["payload"][0]["extensions"] == {"code": "RATE_LIMITED"}
        await asyncio.sleep(0.6)  # one more token
        await client.subscribe("4", COUNTER)
        await until(lambda: manager.get_metrics()["subscribers"] == 4)
        # Past the burst of refusals: closed as abusive. Its subscriptions go with it.
        for n in range(5, 9):
            await client.subscribe(str(n), COUNTER)
        assert await client.closed_with() == (1008, "Rate limit exceeded")
        await until(lambda: manager.get_metrics()["subscribers"] == 0)
        assert limited(manager) == {"subscribe_rate": 5}


async def test_a_refused_operation_leaves_other_connections_alone() -> None:
    async with (
        server(subscribe_rate=1, subscribe_burst=1) as (address, manager),
        ws_client(address) as flooding,
        ws_client(address) as calm,
    ):
        await flooding.init({"token": "eve@acme"})
        await calm.init({"token": "ann@acme"})
        await calm.subscribe("1", COUNTER)
        await flooding.subscribe("1", COUNTER)
        await flooding.subscribe("2", COUNTER)
        assert (await flooding.receive())["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        await manager.publish("counter", {"n": 1})
        assert (await calm.receive())["payload"]["data"] == {"counter": 1}


# ----- users and tenants across the process ------------------------------------------------------


async def test_connections_per_user_and_per_tenant() -> None:
    limits = Limits(max_connections_per_user=2, max_connections_per_tenant=3)
    async with server(limits) as (address, manager), contextlib.AsyncExitStack() as stack:

        async def connect(token: str) -> Any:
            client = await stack.enter_async_context(ws_client(address))
            await client.send({"type": "connection_init", "payload": {"token": token}})
            return client

        first = await connect("ann@acme")
        assert (await first.receive())["type"] == "connection_ack"
        assert (await (await connect("ann@acme")).receive())["type"] == "connection_ack"
        assert await (await connect("ann@acme")).closed_with() == (4429, "Too many connections")
        assert (await (await connect("bob@acme")).receive())["type"] == "connection_ack"
        assert await (await connect("cat@acme")).closed_with() == (4429, "Too many connections")
        assert (await (await connect("dan@globex")).receive())["type"] == "connection_ack"
        # A connection that closes frees its place.
        await first.ws.close()
        await until(lambda: len(manager.connections) == 3)
        assert (await (await connect("ann@acme")).receive())["type"] == "connection_ack"
        assert limited(manager) == {"connections_per_user": 1, "connections_per_tenant": 1}


async def test_subscriptions_per_user_across_connections() -> None:
    async with (
        server(Limits(max_subscriptions_per_user=2)) as (address, manager),
        ws_client(address) as one,
        ws_client(address) as two,
        ws_client(address) as other,
    ):
        for client, token in ((one, "ann@acme"), (two, "ann@acme"), (other, "bob@acme")):
            await client.init({"token": token})
        await one.subscribe("1", COUNTER)
        await two.subscribe("1", COUNTER)
        await other.subscribe("1", COUNTER)
        await until(lambda: manager.get_metrics()["subscribers"] == 3)
        await two.subscribe("2", COUNTER)
        refused = await two.receive()
        assert refused["payload"][0]["extensions"] == {"code": "TOO_MANY_SUBSCRIPTIONS"}
        assert "for this user (at most 2)" in refused["payload"][0]["message"]
        await one.send({"id": "1", "type": "complete"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        await two.subscribe("3", COUNTER)
        await until(lambda: manager.get_metrics()["subscribers"] == 3)
        assert limited(manager) == {"subscriptions_per_user": 1}


async def test_the_legacy_protocol_and_sse_answer_a_full_quota_their_way() -> None:
    async with (
        server(Limits(max_connections_per_user=1)) as (address, manager),
        ws_client(address) as first,
        ws_client(address, subprotocols=["graphql-ws"]) as legacy,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        await first.init({"token": "ann@acme"})
        await legacy.send({"type": "connection_init", "payload": {"token": "ann@acme"}})
        assert await legacy.receive() == {
            "type": "connection_error",
            "payload": {"message": "Too many connections"},
        }
        assert await legacy.closed_with() == (4429, "Too many connections")
        headers = {"authorization": "Bearer ann@acme", "accept": "text/event-stream"}
        answer = await http.post("/graphql", json={"query": COUNTER}, headers=headers)
        assert answer.status_code == 429
        reserved = await http.put("/graphql", headers={"authorization": "Bearer ann@acme"})
        assert reserved.status_code == 429
        assert limited(manager) == {"connections_per_user": 3}
        assert manager.get_metrics()["subscriptions_registered"] == 0


async def test_refusals_are_counted_for_prometheus() -> None:
    async with (
        server(subscribe_rate=1, subscribe_burst=1) as (address, manager),
        ws_client(address) as client,
    ):
        await client.init({"token": "ann@acme"})
        await client.subscribe("1", COUNTER)
        await client.subscribe("2", COUNTER)
        assert (await client.receive())["id"] == "2"
        (family,) = [
            m for m in PrometheusCollector(manager).collect() if m.name == "fraiseql_limited"
        ]
        counts = {s.labels["limit"]: s.value for s in family.samples if s.name.endswith("_total")}
        assert counts["subscribe_rate"] == 1
        assert counts["connections_per_user"] == 0


# ----- events per subscription: conflation ------------------------------------------------------

latest = SubscriptionRegistry()


@subscription(registry=latest, channel="ticks", conflate=True)
def tick(event: Any) -> str:
    """The latest tick only, for a client that falls behind: `n:text`."""
    return f"{event.data['id']}:{event.data['text']}"


@subscription(registry=latest, channel="ticks")
def every_tick(event: Any) -> str:
    """Every tick."""
    return f"{event.data['id']}:{event.data['text']}"


async def test_a_conflated_subscription_gets_the_latest_value_and_never_lags() -> None:
    """A client that reads nothing while 16 MiB are published: its conflated subscription
    keeps one frame queued, the latest, where the other one overflows its queue and lags."""
    app, manager = protocol_app([*latest.fields], None, max_queue=4, ping_interval=None)
    async with running_server(app) as address, ws_client(address) as client:
        await client.init()
        await client.subscribe("latest", "subscription { tick }")
        await client.subscribe("every", "subscription { everyTick }")
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        count = flood(manager, "ticks", lambda n, text: {"id": str(n), "text": text})
        values: list[int] = []
        lagged = False
        while not lagged or not values or values[-1] != count - 1:
            message = await client.receive(10)
            if message["id"] == "every":
                lagged = lagged or message["type"] == "error"
                continue
            assert message["type"] == "next", message
            values.append(int(message["payload"]["data"]["tick"].partition(":")[0]))
        assert values == sorted(set(values)) and len(values) < count
        assert manager.get_metrics()["frames_conflated"] == count - len(values)
        # Still live, and still conflated.
        await manager.publish("ticks", {"id": str(count), "text": "x"})
        assert await client.receive() == {
            "id": "latest",
            "type": "next",
            "payload": {"data": {"tick": f"{count}:x"}},
        }


# ----- events per subscription: a rate ----------------------------------------------------------

paced = SubscriptionRegistry()


@subscription(registry=paced, channel="prices", max_rate=10)
def price(event: Any) -> int:
    """Every price, at most 10 a second."""
    return int(event.data["n"])


@subscription(registry=paced, channel="prices", max_rate=10, conflate=True)
def latest_price(event: Any) -> int:
    """The latest price, at most 10 a second."""
    return int(event.data["n"])


async def test_max_rate_paces_a_subscription_without_losing_or_reordering_events() -> None:
    """30 events at once: a burst of 10 goes out, the others follow at 10 a second, in order;
    the conflated twin gets the burst, then only the latest."""
    app, manager = protocol_app([*paced.fields], None, ping_interval=None)
    async with running_server(app) as address, ws_client(address) as client:
        await client.init()
        await client.subscribe("every", "subscription { price }")
        await client.subscribe("latest", "subscription { latestPrice }")
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(30):
            await manager.publish("prices", {"n": n})
        got: dict[str, list[tuple[int, float]]] = {"every": [], "latest": []}
        while len(got["every"]) < 30 or not got["latest"] or got["latest"][-1][0] != 29:
            message = await client.receive(10)
            assert message["type"] == "next", message
            value = next(iter(message["payload"]["data"].values()))
            got[message["id"]].append((value, loop.time() - start))
        every = got["every"]
        assert [n for n, _ in every] == list(range(30))
        assert every[9][1] < 0.5, "the burst at once"
        assert every[-1][1] >= 1.7, "the other 20 at 10 a second (about 2 s)"
        # The conflated twin: the burst (values still queued are replaced by newer ones, as
        # for any conflated subscription), then the latest when its slot comes.
        latest = [n for n, _ in got["latest"]]
        assert latest == sorted(set(latest)) and latest[-1] == 29 and len(latest) <= 11
        metrics = manager.get_metrics()
        assert metrics["frames_held"] == 20 + 1
        assert metrics["frames_conflated"] == 30 - len(latest)
        with pytest.raises(TimeoutError):
            await client.receive(0.3)


def test_max_rate_must_be_a_positive_rate() -> None:
    from fraiseql_fastapi.errors import SubscriptionDefinitionError

    for bad in (0, -1, float("inf"), "5", True):
        with pytest.raises(SubscriptionDefinitionError, match="max_rate"):

            @subscription(registry=SubscriptionRegistry(), max_rate=bad)  # type: ignore[arg-type]
            def bad_rate(event: Any) -> int:
                return 0
