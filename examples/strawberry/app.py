"""A Strawberry app that keeps its schema, queries and mutations, and gets fraiseql-fastapi's
subscriptions on the same path.

    python examples/strawberry/app.py [--host 127.0.0.1] [--port 8000]

- The Strawberry schema (`Query.messages`, `Query.me`, `Mutation.postMessage`) is the
  application's as it was; `SubscriptionManager(schema=schema)` adds
  `subscription ($room: String!) { messagePosted(roomId: $room) { id author text } }`, whose
  result is the same Strawberry `Message` type. One endpoint, `/graphql`, serves POST queries
  and mutations (run by Strawberry's resolvers), subscriptions over WebSocket and SSE, and
  GraphiQL, all from one schema.
- `get_context` is a FastAPI dependency: it finds the user from `Authorization: Bearer <token>`
  or the `token` cookie, for POST requests and the WebSocket handshake alike. Resolvers read it
  as `info.context`; `on_connect` takes it as `context` and may also accept
  `connection_init`'s `{"token": ...}` (what browsers that cannot set headers send).
- `postMessage` needs a user and publishes the message to its room's subscribers.
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Mapping
from typing import Annotated, Any

import strawberry
from fastapi import Depends, FastAPI
from graphql import GraphQLError
from starlette.requests import HTTPConnection

from fraiseql_fastapi import ConnectionContext, EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

#: The demo's users, by token.
TOKENS: dict[str, str] = {"alice-token": "alice", "bob-token": "bob"}

#: This example's own subscriptions (so that importing several examples does not mix them).
registry = SubscriptionRegistry()


@strawberry.type
class Message:
    """A message posted in a room."""

    id: strawberry.ID
    room_id: str
    author: str
    text: str


class Store:
    """The messages posted so far (in memory)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._ids = itertools.count(1)

    def add(self, room_id: str, author: str, text: str) -> Message:
        message = Message(
            id=strawberry.ID(str(next(self._ids))), room_id=room_id, author=author, text=text
        )
        self.messages.append(message)
        return message


@strawberry.type
class Query:
    @strawberry.field(description="The messages of a room, oldest first.")
    def messages(self, info: strawberry.Info, room_id: str) -> list[Message]:
        store: Store = info.context["store"]
        return [message for message in store.messages if message.room_id == room_id]

    @strawberry.field(description="Who the request acts for (null: anonymous).")
    def me(self, info: strawberry.Info) -> str | None:
        user: str | None = info.context["user"]
        return user


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Posts a message (signed in only) to a room's subscribers.")
    async def post_message(self, info: strawberry.Info, room_id: str, text: str) -> Message:
        user = info.context["user"]
        if user is None:  # a GraphQLError's message reaches the client; others are masked
            raise GraphQLError("Sign in to post", extensions={"code": "UNAUTHENTICATED"})
        message = info.context["store"].add(room_id, user, text)
        manager: SubscriptionManager = info.context["manager"]
        await manager.publish(f"room:{room_id}", message, event_type="messagePosted")
        return message


schema = strawberry.Schema(query=Query, mutation=Mutation)


@subscription(channel="room:{room_id}", event_types="messagePosted", registry=registry)
async def message_posted(event: Any, room_id: str) -> Message:
    """New messages in a room (the Strawberry `Message` type)."""
    data: Message = event.data  # the message as published, in JSON: the core projects it
    return data


def user_of(request: HTTPConnection) -> str | None:
    """The user of a request's bearer token or `token` cookie (a dependency of its own)."""
    authorization = request.headers.get("authorization", "")
    token = authorization.removeprefix("Bearer ") or request.cookies.get("token", "")
    return TOKENS.get(token)


def create_app(bus: Any = None, graphiql_assets_url: str | None = None) -> FastAPI:
    """The application with a fresh manager and store (`app.state.manager`); GraphiQL's assets
    from `graphiql_assets_url`, by default `FRAISEQL_GRAPHIQL_ASSETS` (unset: the CDN)."""
    manager = SubscriptionManager(
        bus or EventBusConfig.memory(), schema=schema, subscriptions=registry.fields
    )
    store = Store()

    def get_context(
        request: HTTPConnection, user: Annotated[str | None, Depends(user_of)]
    ) -> dict[str, Any]:
        """Strawberry's resolvers' `info.context`, for POST and the WebSocket handshake."""
        return {"request": request, "user": user, "store": store, "manager": manager}

    def on_connect(
        payload: Mapping[str, Any] | None, request: HTTPConnection, context: dict[str, Any]
    ) -> ConnectionContext | bool:
        """Signed in by the handshake's cookie or header, or by `{"token": ...}`; anonymous
        connections may subscribe too."""
        user = context["user"] or TOKENS.get(str((payload or {}).get("token", "")))
        return ConnectionContext(user_id=user) if user else True

    app = FastAPI(title="fraiseql-fastapi with Strawberry", lifespan=manager.lifespan)
    app.state.manager = manager
    app.include_router(
        SubscriptionRouterFactory.create(
            manager,
            path="/graphql",
            on_connect=on_connect,
            context_getter=get_context,
            graphiql_assets_url=graphiql_assets_url or os.environ.get("FRAISEQL_GRAPHIQL_ASSETS"),
        )
    )
    return app


app = create_app()


def main(argv: list[str] | None = None) -> None:
    """Serves the app with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
