"""An existing Ariadne (schema-first) schema: the SDL declares the Subscription type too, and a
`@subscription` serves each of its fields.

uvicorn ariadne_app:app
"""

from typing import Annotated

from ariadne import QueryType, make_executable_schema
from fastapi import FastAPI, Header
from graphql import GraphQLError
from pydantic import BaseModel

from fraiseql_fastapi import ID, EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()  # (this page's own; by default, one for the whole app)

# --8<-- [start:sdl]
SDL = """
type Query {
  messages(roomId: String!): [Message!]!
  secret: String
  broken: String
}

type Message {
  id: ID!
  roomId: String!
  text: String!
}

type Subscription {
  messagePosted(roomId: String!): Message!
}
"""
# --8<-- [end:sdl]

MESSAGES = [{"id": "1", "roomId": "lobby", "text": "welcome"}]
query = QueryType()


@query.field("messages")
def resolve_messages(_, info, roomId: str) -> list[dict]:
    return [message for message in MESSAGES if message["roomId"] == roomId]


@query.field("secret")
def resolve_secret(_, info) -> str:
    if info.context["user"] is None:
        raise GraphQLError("Sign in first", extensions={"code": "UNAUTHENTICATED"})
    return f"for {info.context['user']}"


@query.field("broken")
def resolve_broken(_, info) -> str:
    raise RuntimeError("the database password is hunter2")  # masked: never sent


# --8<-- [start:subscription]
class Message(BaseModel):  # shaped like the SDL's Message (roomId: room_id camelCased)
    id: ID
    room_id: str
    text: str


@subscription(channel="room:{room_id}", registry=registry)
def message_posted(event, room_id: str) -> Message:  # messagePosted(roomId: String!): Message!
    return Message(**event.data)


# --8<-- [end:subscription]


def get_context(x_user: Annotated[str | None, Header()] = None) -> dict:
    return {"user": x_user}


schema = make_executable_schema(SDL, query)
manager = SubscriptionManager(EventBusConfig.memory(), schema=schema, subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, context_getter=get_context))
