"""After: the same schema and API with fraiseql-fastapi. The Strawberry types, query and
mutation stay; the subscriptions are `@subscription` functions, fed by `manager.publish`.

uvicorn fraiseql_app:app
"""

import asyncio
import itertools
from collections.abc import AsyncIterator

import strawberry
from fastapi import FastAPI

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()  # (this page's own; by default, one for the whole app)

#: token -> user: your identity provider in a real application.
TOKENS = {"ann-token": "ann"}
ids = itertools.count(1)


@strawberry.type
class Message:
    id: strawberry.ID
    room_id: str
    text: str


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hello"


# --8<-- [start:mutation]
@strawberry.type
class Mutation:
    @strawberry.mutation
    async def post_message(self, room_id: str, text: str) -> Message:
        message = Message(id=strawberry.ID(str(next(ids))), room_id=room_id, text=text)
        await manager.publish(f"room:{room_id}", message, event_type="messagePosted")
        return message


# --8<-- [end:mutation]


# --8<-- [start:subscriptions]
def on_connect(payload, websocket):
    """connection_init, once per connection: what IsMember checked per subscription."""
    token = (payload or {}).get("token")
    if token is None:
        return True  # anonymous: may connect, but has no role
    if token not in TOKENS:
        return False  # closed with 4403
    return {"user_id": TOKENS[token], "roles": {"member"}}


@subscription(channel="room:{room_id}", roles="member", registry=registry)
def message_posted(event, room_id: str) -> Message:
    return event.data  # the published Message, as JSON: projected onto each selection


@subscription(registry=registry)
async def countdown(count: int) -> AsyncIterator[int]:  # a generator, kept as it was
    for n in range(count, 0, -1):
        yield n
        await asyncio.sleep(0.01)


manager = SubscriptionManager(
    EventBusConfig.memory(),
    schema=strawberry.Schema(query=Query, mutation=Mutation),  # no Subscription type
    subscriptions=registry.fields,
)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, on_connect=on_connect))
# --8<-- [end:subscriptions]
