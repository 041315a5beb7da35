"""Before: Strawberry's own subscriptions, an async generator per subscriber fed by an
in-process broadcast.

uvicorn strawberry_app:app
"""

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator

import strawberry
from fastapi import FastAPI
from strawberry.fastapi import GraphQLRouter
from strawberry.permission import BasePermission

#: token -> user: your identity provider in a real application.
TOKENS = {"ann-token": "ann"}
ids = itertools.count(1)


@strawberry.type
class Message:
    id: strawberry.ID
    room_id: str
    text: str


# --8<-- [start:broadcast]
class Broadcast:
    """The fan-out Strawberry leaves to you: a queue per subscriber of a room."""

    def __init__(self) -> None:
        self.rooms: dict[str, set[asyncio.Queue]] = defaultdict(set)

    def publish(self, room_id: str, message: Message) -> None:
        for queue in self.rooms[room_id]:
            queue.put_nowait(message)

    async def listen(self, room_id: str) -> AsyncIterator[Message]:
        queue: asyncio.Queue = asyncio.Queue()
        self.rooms[room_id].add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self.rooms[room_id].discard(queue)


broadcast = Broadcast()
# --8<-- [end:broadcast]


class IsMember(BasePermission):
    message = "Sign in first"

    def has_permission(self, source, info: strawberry.Info, **kwargs) -> bool:
        params = info.context.get("connection_params") or {}  # the connection_init payload
        return params.get("token") in TOKENS


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hello"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def post_message(self, room_id: str, text: str) -> Message:
        message = Message(id=strawberry.ID(str(next(ids))), room_id=room_id, text=text)
        broadcast.publish(room_id, message)
        return message


# --8<-- [start:subscriptions]
@strawberry.type
class Subscription:
    @strawberry.subscription(permission_classes=[IsMember])
    async def message_posted(self, room_id: str) -> AsyncIterator[Message]:
        async for message in broadcast.listen(room_id):
            yield message

    @strawberry.subscription
    async def countdown(self, count: int) -> AsyncIterator[int]:
        for n in range(count, 0, -1):
            yield n
            await asyncio.sleep(0.01)


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
app = FastAPI()
app.include_router(GraphQLRouter(schema), prefix="/graphql")
# --8<-- [end:subscriptions]
