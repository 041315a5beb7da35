"""`SubscriptionManager(schema=existing)`: an application's own schema (Strawberry, Ariadne,
graphql-core) served with our subscriptions on one path: its queries and mutations run by its
resolvers, one schema for introspection and clients, shared types checked to match, and
`introspection=False`."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from ariadne import MutationType, QueryType, make_executable_schema
from example_modules import load_module
from fastapi import FastAPI
from gql import Client, gql
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from graphql import (
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    build_schema,
)
from helpers import running_server, until
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from fraiseql_fastapi import ID, SubscriptionDefinitionError, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory
from fraiseql_fastapi.testing import SubscriptionError, SubscriptionTestClient

pytestmark = pytest.mark.anyio

POSTED = "subscription ($r: String!) { messagePosted(roomId: $r) { id author text } }"
POST = "mutation ($r: String!, $t: String!) { postMessage(roomId: $r, text: $t) { id author } }"


def strawberry_app() -> FastAPI:
    app: FastAPI = load_module("examples/strawberry/app.py").create_app()
    return app


@pytest.fixture
async def strawberry_server() -> AsyncIterator[str]:
    async with running_server(strawberry_app()) as address:
        yield address


# --- Strawberry: the example app over uvicorn ------------------------------------------------


async def test_strawberry_queries_mutations_and_subscriptions_share_one_path(
    strawberry_server: str,
) -> None:
    url = f"ws://{strawberry_server}/graphql"
    async with (
        httpx.AsyncClient(base_url=f"http://{strawberry_server}") as http,
        SubscriptionTestClient(url, cookies={"token": "bob-token"}) as bob,
    ):
        posted = await bob.subscribe(POSTED, {"r": "lobby"})
        # Strawberry's own resolvers, over the WebSocket, with the handshake's context (cookie).
        assert await bob.execute("{ me }") == {"data": {"me": "bob"}}

        headers = {"authorization": "Bearer alice-token"}
        answer = await http.post(
            "/graphql",
            json={"query": POST, "variables": {"r": "lobby", "t": "hi"}},
            headers=headers,
        )
        assert answer.status_code == 200
        assert answer.json() == {"data": {"postMessage": {"id": "1", "author": "alice"}}}
        # The mutation published the Strawberry `Message`: the subscription's result type.
        assert await posted.next() == {
            "data": {"messagePosted": {"id": "1", "author": "alice", "text": "hi"}}
        }

        query = '{ messages(roomId: "lobby") { id text } me }'
        answer = await http.post("/graphql", json={"query": query}, headers=headers)
        assert answer.json() == {"data": {"messages": [{"id": "1", "text": "hi"}], "me": "alice"}}


async def test_strawberry_resolver_errors_reach_the_client_as_graphql_errors(
    strawberry_server: str,
) -> None:
    async with httpx.AsyncClient(base_url=f"http://{strawberry_server}") as http:
        answer = await http.post(
            "/graphql", json={"query": POST, "variables": {"r": "lobby", "t": "anonymous"}}
        )
    body = answer.json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Sign in to post"
    assert body["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


async def test_strawberry_schema_is_one_for_introspection_and_gql(strawberry_server: str) -> None:
    """gql loads the schema by introspection over HTTP, validates every document against it on
    the client, and runs a query, a mutation and a subscription."""
    http_transport = HTTPXAsyncTransport(
        url=f"http://{strawberry_server}/graphql", headers={"authorization": "Bearer alice-token"}
    )
    async with Client(transport=http_transport, fetch_schema_from_transport=True) as http:
        assert http.client.schema is not None
        schema = http.client.schema
        assert schema.query_type is not None and schema.mutation_type is not None
        assert schema.subscription_type is not None
        # One Message type, the result of a query and of the subscription alike.
        message = schema.get_type("Message")
        assert str(schema.subscription_type.fields["messagePosted"].type) == "Message!"
        assert str(schema.query_type.fields["messages"].type) == "[Message!]!"
        assert message is not None and set(message.fields) == {"id", "roomId", "author", "text"}  # type: ignore[attr-defined]

        ws_transport = WebsocketsTransport(url=f"ws://{strawberry_server}/graphql")
        async with Client(transport=ws_transport, schema=schema) as ws:
            received: list[dict[str, Any]] = []

            async def listen() -> None:
                request = gql(POSTED)
                request.variable_values = {"r": "gql"}
                async for result in ws.subscribe(request):
                    received.append(result)
                    return

            listener = asyncio.create_task(listen())
            # Posted until the subscription is in place (gql gives no signal for that).
            post = gql(POST)
            post.variable_values = {"r": "gql", "t": "via gql"}
            for _ in range(100):
                await http.execute(post)
                if received:
                    break
                await asyncio.sleep(0.05)
            await asyncio.wait_for(listener, 5)
        assert received[0]["messagePosted"]["text"] == "via gql"
        assert received[0]["messagePosted"]["author"] == "alice"

        with pytest.raises(Exception, match="Cannot query field 'nope'"):
            await http.execute(gql("{ nope }"))  # validated by gql against the loaded schema


# --- Ariadne: a schema-first app, in process --------------------------------------------------

ARIADNE_SDL = """
    "A message posted in a room."
    type Message {
        id: ID!
        roomId: String!
        text: String!
    }
    type Query {
        messages(roomId: String!): [Message!]!
    }
    type Mutation {
        postMessage(roomId: String!, text: String!): Message!
    }
    type Subscription {
        messagePosted(roomId: String!): Message!
    }
"""


class Message(BaseModel):
    """Our model of the schema's `Message`."""

    id: ID
    room_id: str
    text: str


def ariadne_app() -> tuple[FastAPI, SubscriptionManager]:
    registry = SubscriptionRegistry()

    @subscription(channel="room:{room_id}", registry=registry)
    async def message_posted(event: Any, room_id: str) -> Message:
        return Message.model_validate(event.data)

    messages: list[dict[str, str]] = []
    query, mutation = QueryType(), MutationType()

    @query.field("messages")
    def resolve_messages(_: Any, info: Any, roomId: str) -> list[dict[str, str]]:
        return [message for message in messages if message["roomId"] == roomId]

    @mutation.field("postMessage")
    async def resolve_post(_: Any, info: Any, roomId: str, text: str) -> dict[str, str]:
        message = {"id": str(len(messages) + 1), "roomId": roomId, "text": text}
        messages.append(message)
        published = Message(id=ID(message["id"]), room_id=roomId, text=text)
        await manager.publish(f"room:{roomId}", published)
        return message

    schema = make_executable_schema(ARIADNE_SDL, query, mutation)
    manager = SubscriptionManager(schema=schema, subscriptions=registry.fields)
    app = FastAPI(lifespan=manager.lifespan)
    app.include_router(SubscriptionRouterFactory.create(manager))
    return app, manager


async def test_ariadne_schema_gets_our_subscriptions() -> None:
    app, manager = ariadne_app()
    transport = httpx.ASGITransport(app)
    async with (
        SubscriptionTestClient(app) as client,
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        posted = await client.subscribe(
            'subscription { messagePosted(roomId: "1") { id roomId text } }'
        )
        answer = await http.post(
            "/graphql",
            json={"query": 'mutation { postMessage(roomId: "1", text: "hello") { id } }'},
        )
        assert answer.json() == {"data": {"postMessage": {"id": "1"}}}
        assert await posted.next() == {
            "data": {"messagePosted": {"id": "1", "roomId": "1", "text": "hello"}}
        }
        answer = await http.post("/graphql", json={"query": '{ messages(roomId: "1") { text } }'})
        assert answer.json() == {"data": {"messages": [{"text": "hello"}]}}

        introspection = "{ __schema { subscriptionType { fields { name description } } } }"
        answer = await http.post("/graphql", json={"query": introspection})
        fields = answer.json()["data"]["__schema"]["subscriptionType"]["fields"]
        assert [field["name"] for field in fields] == ["messagePosted"]
    sdl = manager.print_schema()
    assert sdl.count("type Message {") == 1
    assert '"""A message posted in a room."""' in sdl  # the application's type, as it wrote it
    assert "_subscriptions" not in sdl


async def test_a_subscription_document_may_hold_the_applications_operations_too() -> None:
    app, _ = ariadne_app()
    document = """
        fragment M on Message { id text }
        query Q { messages(roomId: "2") { ...M } }
        subscription S { messagePosted(roomId: "2") { ...M } }
    """
    transport = httpx.ASGITransport(app)
    async with (
        SubscriptionTestClient(app) as client,
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        posted = await client.subscribe(document, operation_name="S")
        mutation = 'mutation { postMessage(roomId: "2", text: "x") { id } }'
        await http.post("/graphql", json={"query": mutation})
        assert await posted.next() == {"data": {"messagePosted": {"id": "1", "text": "x"}}}
        answer = await http.post("/graphql", json={"query": document, "operationName": "Q"})
        assert answer.json() == {"data": {"messages": [{"id": "1", "text": "x"}]}}


# --- graphql-core, code first -----------------------------------------------------------------


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


@dataclass
class Reading:
    at: datetime.datetime
    mood: Mood


async def test_graphql_core_schema_and_arguments_coerced_by_our_types() -> None:
    """The application's `DateTime` scalar (build_schema's, which parses nothing) and `Mood`
    enum (whose values are numbers) are the schema's; a subscription's arguments of those types
    still reach its resolver as a datetime and a `Mood`, coerced by ours."""
    registry = SubscriptionRegistry()
    seen: list[Any] = []

    @subscription(channel="readings", registry=registry)
    async def readings(event: Any, since: datetime.datetime, mood: Mood = Mood.HAPPY) -> Reading:
        seen.append((since, mood))
        return Reading(at=since, mood=Mood(event.data["mood"]))

    schema = build_schema(
        """
        scalar DateTime
        enum Mood { HAPPY SAD }
        type Reading { at: DateTime! mood: Mood! }
        type Query { hello: String! }
        """
    )
    schema.query_type.fields["hello"].resolve = lambda *_: "world"  # type: ignore[union-attr]
    for number, value in enumerate(schema.type_map["Mood"].values.values()):  # type: ignore[attr-defined]
        value.value = number
    manager = SubscriptionManager(schema=schema, subscriptions=registry.fields)
    # The default, in the application's enum: its SDL is as ours would be.
    assert "readings(since: DateTime!, mood: Mood! = HAPPY): Reading!" in manager.print_schema()
    app = FastAPI(lifespan=manager.lifespan)
    app.include_router(SubscriptionRouterFactory.create(manager))
    async with SubscriptionTestClient(app) as client:
        hello = await client.subscribe("{ hello }")
        assert await hello.next() == {"data": {"hello": "world"}}
        sub = await client.subscribe(
            "subscription ($s: DateTime!, $m: Mood!) { readings(since: $s, mood: $m) { at mood } }",
            {"s": "2026-12-01T10:00:00+00:00", "m": "SAD"},
        )
        await manager.publish("readings", {"mood": "sad"})
        assert await sub.next() == {
            "data": {"readings": {"at": "2026-12-01T10:00:00+00:00", "mood": "SAD"}}
        }
        with pytest.raises(SubscriptionError, match="DateTime"):
            bad = await client.subscribe('subscription { readings(since: "soon") { at } }')
            await bad.next()
    assert seen == [(datetime.datetime(2026, 12, 1, 10, tzinfo=datetime.timezone.utc), Mood.SAD)]


def test_a_graphql_core_schema_built_in_code() -> None:
    query = GraphQLObjectType("Query", {"hello": GraphQLField(GraphQLString)})
    registry = SubscriptionRegistry()

    @subscription(registry=registry)
    async def ping(event: Any) -> str:
        return "pong"

    manager = SubscriptionManager(schema=GraphQLSchema(query), subscriptions=registry.fields)
    assert manager.schema.graphql_schema.query_type is query
    assert "ping: String!" in manager.print_schema()


# --- types that do not match ------------------------------------------------------------------


def manager_for(sdl: str, returns: Any) -> SubscriptionManager:
    """A manager for `sdl` and `messagePosted(roomId: String!)` returning `returns`."""

    async def message_posted(event: Any, room_id: str) -> Any:
        return event.data

    message_posted.__annotations__["return"] = returns
    registry = SubscriptionRegistry()
    subscription(channel="room:{room_id}", registry=registry)(message_posted)
    return SubscriptionManager(schema=build_schema(sdl), subscriptions=registry.fields)


@dataclass
class Post:
    id: ID
    text: str


QUERY = "type Query { posts: [Post!]! }\n"


@pytest.mark.parametrize(
    ("their_post", "why"),
    [
        (
            "type Post { id: String! text: String! }",
            "fields that differ: id: ID! in ours, id: String! in the existing schema",
        ),
        (
            "type Post { id: ID! text: String! likes: Int! }",
            "fields only in the existing schema: likes: Int!",
        ),
        ("type Post { id: ID! }", "fields only in ours: text: String!"),
        (
            "type Post { id: ID! text(format: String): String! }",
            "text(format: String): String! in the existing schema",
        ),
        (
            "interface Node { id: ID! }\ntype Post implements Node { id: ID! text: String! }",
            "interfaces only in the existing schema: Node",
        ),
        ("enum Post { A }", "one is an enum, the other an object type"),
    ],
)
def test_a_shared_type_must_match(their_post: str, why: str) -> None:
    with pytest.raises(SubscriptionDefinitionError) as raised:
        manager_for(QUERY + their_post, Post)
    message = str(raised.value)
    assert "type 'Post' is defined twice, and differently" in message
    assert their_post.splitlines()[-1].split("{")[0].strip() in message  # theirs, printed
    assert f"{__name__}.Post maps to\ntype Post {{\n  id: ID!\n  text: String!\n}}" in message
    assert why in message


def test_matching_types_and_scalars_of_one_name_are_the_applications() -> None:
    manager = manager_for(QUERY + '"Theirs."\ntype Post { text: String!, id: ID! }', Post)
    schema = manager.schema.graphql_schema
    assert schema.subscription_type is not None
    post = schema.get_type("Post")
    assert post is not None and post.description == "Theirs."
    assert schema.subscription_type.fields["messagePosted"].type.of_type is post  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("their_subscription", "why"),
    [
        (
            "type Subscription { postAdded: Post! }",
            "Subscription.postAdded is served by no @subscription",
        ),
        (
            "type Subscription { messagePosted(room: String!): Post! }",
            "Subscription.messagePosted is messagePosted(room: String!): Post! in the existing "
            "schema but messagePosted(roomId: String!): Post! as a @subscription",
        ),
    ],
)
def test_the_applications_subscription_fields_must_be_ours(
    their_subscription: str, why: str
) -> None:
    sdl = QUERY + "type Post { id: ID! text: String! }\n" + their_subscription
    with pytest.raises(SubscriptionDefinitionError) as raised:
        manager_for(sdl, Post)
    assert why in str(raised.value)


SCALARS: dict[str, Any] = {"String": str, "Int": int, "Float": float, "Boolean": bool, "ID": ID}
FIELDS = st.dictionaries(
    st.sampled_from(["id", "text", "count", "ratio", "flag"]),
    st.tuples(st.sampled_from(sorted(SCALARS)), st.booleans()),  # (type, nullable)
    min_size=1,
)


@settings(max_examples=60, deadline=None)
@given(ours=FIELDS, theirs=FIELDS)
def test_a_shared_type_is_accepted_exactly_when_it_matches(
    ours: dict[str, tuple[str, bool]], theirs: dict[str, tuple[str, bool]]
) -> None:
    """Our `Post` (a dataclass) against the schema's `type Post`, for random fields: startup
    succeeds exactly when the two have the same fields, types and nullability."""

    def hint(scalar: str, nullable: bool) -> Any:
        return SCALARS[scalar] | None if nullable else SCALARS[scalar]

    post = dataclasses.make_dataclass("Post", [(name, hint(*spec)) for name, spec in ours.items()])
    fields = " ".join(f"{n}: {t}{'' if nullable else '!'}" for n, (t, nullable) in theirs.items())
    sdl = f"type Query {{ posts: [Post!]! }}\ntype Post {{ {fields} }}"
    if ours == theirs:
        manager_for(sdl, post)
    else:
        with pytest.raises(SubscriptionDefinitionError, match="defined twice, and differently"):
            manager_for(sdl, post)


def test_schema_must_be_a_schema() -> None:
    with pytest.raises(SubscriptionDefinitionError, match="takes a graphql-core GraphQLSchema"):
        SubscriptionManager(schema="type Query { a: Int }", subscriptions=[])


# --- introspection off ------------------------------------------------------------------------


async def test_introspection_can_be_turned_off() -> None:
    registry = SubscriptionRegistry()

    @subscription(channel="room:{room_id}", registry=registry)
    async def message_posted(event: Any, room_id: str) -> Post:
        return Post(id=event.data["id"], text=event.data["text"])

    manager = SubscriptionManager(subscriptions=registry.fields, introspection=False)
    app = FastAPI(lifespan=manager.lifespan)
    app.include_router(SubscriptionRouterFactory.create(manager, graphiql=False))
    transport = httpx.ASGITransport(app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        SubscriptionTestClient(app) as client,
    ):
        for query in ("{ __schema { types { name } } }", '{ __type(name: "Post") { name } }'):
            answer = await http.post("/graphql", json={"query": query})
            assert answer.status_code == 400
            assert "introspection has been disabled" in answer.json()["errors"][0]["message"]
            with pytest.raises(SubscriptionError, match="introspection has been disabled"):
                await (await client.subscribe(query)).next()
        answer = await http.post("/graphql", json={"query": "{ __typename }"})
        assert answer.json() == {"data": {"__typename": "Query"}}
        posted = await client.subscribe(
            'subscription { messagePosted(roomId: "1") { __typename id } }'
        )
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room:1", {"id": "7", "text": "t"})
        assert await posted.next() == {"data": {"messagePosted": {"__typename": "Post", "id": "7"}}}
