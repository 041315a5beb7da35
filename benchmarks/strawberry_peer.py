"""The peer for the core benchmark: the same `ticks` subscription in Strawberry, each subscriber
an async generator fed by one in-process broadcast (what a Strawberry app does per event).

No `from __future__ import annotations` here: Strawberry resolves the annotations at runtime.
"""

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import strawberry

#: One queue per live subscriber; publishing puts the event in each.
subscribers: list[asyncio.Queue[dict[str, Any]]] = []


@strawberry.type
class Tick:
    id: strawberry.ID
    channel: str
    value: int


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> bool:
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[Tick, None]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        subscribers.append(queue)
        try:
            while True:
                data = await queue.get()
                yield Tick(id=data["id"], channel=data["channel"], value=data["value"])
        finally:
            subscribers.remove(queue)


schema = strawberry.Schema(query=Query, subscription=Subscription)


def publish(data: dict[str, Any]) -> None:
    for queue in subscribers:
        queue.put_nowait(data)
