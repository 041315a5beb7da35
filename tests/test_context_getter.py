"""`context_getter`: a FastAPI dependency (or a Starlette callable) giving each POST, SSE request
and WebSocket handshake its context: `info.context` of queries and mutations, `context` of an
`on_connect` that takes it, `ConnectionContext.request_context` for resolvers; a dependency
that raises refuses the request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, WebSocketException
from graphql import (
    GraphQLField,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLString,
)
from helpers import running_server, until
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from websockets.asyncio.client import connect

from fraiseql_fastapi import ConnectionContext, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory
from fraiseql_fastapi.http_abstraction.starlette import create_subscription_app
from fraiseql_fastapi.testing import ConnectionClosed, SubscriptionTestClient

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()


@subscription(channel="greetings", registry=registry)
async def greeting(event: Any, context: ConnectionContext) -> str:
    """The event's greeting to the connection's user, as its `context_getter` found them."""
    request_context = context.request_context
    user = request_context["user"] if isinstance(request_context, Mapping) else None
    return f"{event.data} {user} ({context.user_id})"


def whoami(_root: Any, info: GraphQLResolveInfo) -> str | None:
    user: str | None = info.context["user"]
    return user


#: The application's own schema: `whoami` reads `info.context`.
SCHEMA = GraphQLSchema(
    GraphQLObjectType("Query", {"whoami": GraphQLField(GraphQLString, resolve=whoami)})
)


class Sessions:
    """A yield dependency standing for a database session: opened per request, closed after."""

    def __init__(self) -> None:
        self.opened: list[dict[str, bool]] = []

    async def __call__(self) -> AsyncIterator[dict[str, bool]]:
        session = {"open": True}
        self.opened.append(session)
        try:
            yield session
        finally:
            session["open"] = False


def current_user(
    request: HTTPConnection, x_user: Annotated[str | None, Header()] = None
) -> str | None:
    """The user, from the `x-user` header or the `user` cookie (WebSockets and HTTP alike)."""
    user = x_user or request.cookies.get("user")
    if user == "banned":
        if request.scope["type"] == "websocket":
            raise WebSocketException(code=1008, reason="banned")
        raise HTTPException(status_code=401, detail="banned")
    return user


class App:
    """A FastAPI app with a `context_getter` made of dependencies, and what its hooks saw."""

    def __init__(self) -> None:
        self.sessions = Sessions()
        self.on_connect_saw: list[Any] = []
        sessions = self.sessions

        async def get_context(
            user: Annotated[str | None, Depends(current_user)],
            # Not Annotated: with postponed annotations, FastAPI could not see a local name.
            session: Any = Depends(sessions),  # noqa: B008
        ) -> dict[str, Any]:
            return {"user": user, "session": session}

        def on_connect(payload: Any, request: Any, context: Any) -> ConnectionContext:
            self.on_connect_saw.append(context)
            return ConnectionContext(user_id=f"id-{context['user']}")

        self.manager = SubscriptionManager(schema=SCHEMA, subscriptions=registry.fields)
        self.app = FastAPI(lifespan=self.manager.lifespan)
        self.app.include_router(
            SubscriptionRouterFactory.create(
                self.manager, on_connect=on_connect, context_getter=get_context
            )
        )

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(self.app), base_url="http://test")


async def test_post_queries_get_the_dependencies_result_as_info_context() -> None:
    server = App()
    async with server.http() as http:
        answer = await http.post(
            "/graphql", json={"query": "{ whoami }"}, headers={"x-user": "alice"}
        )
        assert answer.json() == {"data": {"whoami": "alice"}}
        answer = await http.post(
            "/graphql", json={"query": "{ whoami }"}, headers={"cookie": "user=bob"}
        )
        assert answer.json() == {"data": {"whoami": "bob"}}
    assert server.sessions.opened == [{"open": False}, {"open": False}]  # each closed after


async def test_a_dependency_that_raises_refuses_the_post() -> None:
    server = App()
    async with server.http() as http:
        answer = await http.post(
            "/graphql", json={"query": "{ whoami }"}, headers={"x-user": "banned"}
        )
    assert answer.status_code == 401
    assert answer.json() == {"detail": "banned"}


async def test_the_websocket_handshake_gets_it_for_on_connect_queries_and_resolvers() -> None:
    server = App()
    async with SubscriptionTestClient(server.app, headers={"x-user": "carol"}) as client:
        assert len(server.on_connect_saw) == 1
        assert server.on_connect_saw[0]["user"] == "carol"
        assert await client.execute("{ whoami }") == {"data": {"whoami": "carol"}}
        greetings = await client.subscribe("subscription { greeting }")
        await server.manager.publish("greetings", "hello")
        assert await greetings.next() == {"data": {"greeting": "hello carol (id-carol)"}}
        # One session for the whole connection, open while it is.
        assert server.sessions.opened == [{"open": True}]
    await until(lambda: server.sessions.opened == [{"open": False}])


async def test_a_dependency_that_raises_refuses_the_handshake() -> None:
    server = App()
    with pytest.raises(ConnectionClosed) as refused:
        async with SubscriptionTestClient(server.app, cookies={"user": "banned"}):
            pass
    assert refused.value.code == 1008
    assert server.on_connect_saw == []


async def test_the_legacy_protocol_and_sse_get_it_too() -> None:
    server = App()
    async with running_server(server.app) as address:
        async with connect(
            f"ws://{address}/graphql",
            subprotocols=["graphql-ws"],  # type: ignore[list-item]
            additional_headers={"cookie": "user=dave"},
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(
                json.dumps({"id": "1", "type": "start", "payload": {"query": "{ whoami }"}})
            )
            messages = [json.loads(await ws.recv()) for _ in range(3)]
            data = [m for m in messages if m["type"] == "data"]
            assert data == [{"type": "data", "id": "1", "payload": {"data": {"whoami": "dave"}}}]

        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            answer = await http.post(
                "/graphql",
                json={"query": "{ whoami }"},
                headers={"accept": "text/event-stream", "x-user": "erin"},
            )
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert 'data: {"data":{"whoami":"erin"}}' in answer.text
    assert [context["user"] for context in server.on_connect_saw] == ["dave", "erin"]


async def test_starlette_context_getter_and_a_hook_without_context() -> None:
    """A Starlette `context_getter(request)` (async); an `on_connect` that does not take
    `context` is called as before, and resolvers still find it on the connection."""

    async def get_context(request: HTTPConnection) -> dict[str, Any]:
        return {"user": request.headers.get("x-user")}

    def on_connect(payload: Any, request: Any) -> dict[str, Any]:
        return {"user_id": (payload or {}).get("id")}

    manager = SubscriptionManager(schema=SCHEMA, subscriptions=registry.fields)
    app = create_subscription_app(
        Starlette(lifespan=manager.lifespan),
        manager,
        on_connect=on_connect,
        context_getter=get_context,
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        answer = await http.post(
            "/graphql", json={"query": "{ whoami }"}, headers={"x-user": "frank"}
        )
        assert answer.json() == {"data": {"whoami": "frank"}}
    async with SubscriptionTestClient(
        app, headers={"x-user": "grace"}, connection_params={"id": "g"}
    ) as client:
        assert await client.execute("{ whoami }") == {"data": {"whoami": "grace"}}
        greetings = await client.subscribe("subscription { greeting }")
        await manager.publish("greetings", "hi")
        assert await greetings.next() == {"data": {"greeting": "hi grace (g)"}}


async def test_without_a_context_getter_queries_get_the_connection_context() -> None:
    def user_id(_root: Any, info: GraphQLResolveInfo) -> str | None:
        context: ConnectionContext = info.context
        return context.user_id

    schema = GraphQLSchema(
        GraphQLObjectType("Query", {"userId": GraphQLField(GraphQLString, resolve=user_id)})
    )
    manager = SubscriptionManager(schema=schema, subscriptions=registry.fields)
    app = FastAPI(lifespan=manager.lifespan)
    app.include_router(
        SubscriptionRouterFactory.create(manager, on_connect=lambda payload, _: payload)
    )
    async with SubscriptionTestClient(app, connection_params={"user_id": "heidi"}) as client:
        assert await client.execute("{ userId }") == {"data": {"userId": "heidi"}}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as http:
        answer = await http.post("/graphql", json={"query": "{ userId }"})
    assert answer.json() == {"data": {"userId": None}}  # POST: anonymous
