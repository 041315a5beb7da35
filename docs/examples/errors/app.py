"""Errors and masking: resolvers that fail by accident and on purpose, a query that fails, and
a `format_error` hook.

uvicorn app:app
"""

from fastapi import FastAPI
from graphql import GraphQLError, build_schema
from pydantic import BaseModel

from fraiseql_fastapi import SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()

#: The profile service, here a dict: "slow" times out, unknown authors fail.
PROFILES = {"ann": "Ann Lee", "bob": "Bob Roy"}


class Message(BaseModel):
    id: str
    author: str
    text: str


async def author_name(author_id: str) -> str:
    """The author's name, from the profile service (here a dict)."""
    if author_id == "slow":
        raise TimeoutError("profile service at 10.0.0.7:8080 timed out")
    if author_id not in PROFILES:
        raise RuntimeError(f"no profile {author_id!r} in postgres://app:hunter2@10.0.0.5/app")
    return PROFILES[author_id]


# --8<-- [start:resolvers]
@subscription(channel="room:{room_id}", registry=registry)
async def message_posted(event, room_id: str) -> Message | None:
    """New messages in a room, with their author's name."""
    if event.data.get("closed"):  # on purpose: the client sees this message and code
        raise GraphQLError("Room is closed", extensions={"code": "ROOM_CLOSED"})
    name = await author_name(event.data["author_id"])  # may fail by accident: masked
    return Message(id=event.data["id"], author=name, text=event.data["text"])


@subscription(channel="room:{room_id}", registry=registry)
async def pinned_message(event, room_id: str) -> Message:
    """The same, non-null: a failure nulls the whole `data`."""
    name = await author_name(event.data["author_id"])
    return Message(id=event.data["id"], author=name, text=event.data["text"])


# --8<-- [end:resolvers]


# --8<-- [start:format_error]
def format_error(error: GraphQLError) -> dict:
    """Every error sent goes through here, already masked; `original_error` is the exception."""
    formatted = dict(error.formatted)
    if isinstance(error.original_error, TimeoutError):
        formatted["message"] = "The profile service timed out; try again"
        formatted["extensions"] = {"code": "UPSTREAM_TIMEOUT", "retry": True}
    return formatted


# --8<-- [end:format_error]


# The application's queries (graphql-core here; Strawberry and Ariadne work alike).
schema = build_schema("type Query { topic(roomId: String!): String }")


def topic(root, info, roomId):
    raise RuntimeError(f"topics table unreachable at 10.0.0.5 (room {roomId})")


schema.query_type.fields["topic"].resolve = topic

# --8<-- [start:manager]
manager = SubscriptionManager(
    subscriptions=registry.fields,
    schema=schema,
    format_error=format_error,  # optional; mask_errors=True is the default
)
# --8<-- [end:manager]
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, path="/graphql"))
