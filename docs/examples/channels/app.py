"""Channels and filters: the subscriptions of an auction house with chat rooms.

uvicorn app:app
"""

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI
from pydantic import BaseModel

from fraiseql_fastapi import (
    ArgumentFilter,
    Complete,
    EventBusConfig,
    SubscriptionManager,
    subscription,
)
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()

#: token -> (user, tenant): your identity provider in a real application.
TOKENS = {"ann": ("ann", "acme"), "bob": ("bob", "acme"), "carol": ("carol", "globex")}


class Message(BaseModel):
    id: str
    room_id: str
    author: str
    text: str
    tags: list[str] = []
    hidden: bool = False


class Bid(BaseModel):
    auction_id: int
    bidder: str
    amount: float
    final: bool = False


# --8<-- [start:template]
@subscription(
    channel="room:{room_id}",
    event_types="messagePosted",
    filters={"author": "author"},
    registry=registry,
)
def message_posted(event, room_id: str, author: str | None = None) -> Message | None:
    """New messages in a room; only those of `author` when given."""
    message = Message(**event.data)
    if message.hidden:
        return None  # nothing is sent for this event
    return message


# --8<-- [end:template]


# --8<-- [start:callable]
def activity_channels(args):
    """The channels of a `roomActivity` subscription: one per room it names."""
    return [f"room:{room}" for room in args["rooms"]]


@subscription(
    channel=activity_channels,
    event_types=["messagePosted", "messageEdited"],
    filters=[
        ArgumentFilter("tags", "contains", argument="tag"),
        ArgumentFilter("hidden", "ne", value=True),
    ],
    registry=registry,
)
def room_activity(event, rooms: list[str], tag: str | None = None) -> Message:
    """Messages posted or edited in any of `rooms`; only those tagged `tag` when given."""
    return Message(**event.data)


# --8<-- [end:callable]


# --8<-- [start:complete]
@subscription(
    channel="auction:{auction_id}",
    filters=[ArgumentFilter("amount", "gte", argument="min_amount")],
    registry=registry,
)
def bid_placed(event, auction_id: int, min_amount: float | None = None) -> Bid | Complete:
    """Bids on an auction until the final one; only those of `min_amount` or more when given."""
    bid = Bid(**event.data)
    if bid.final:
        return Complete(bid)  # sent as the last `next`, then `complete`
    return bid


# --8<-- [end:complete]


# --8<-- [start:stream]
#: Countdowns running now: what a generator's `finally` releases (here, a count).
running = 0


@subscription(registry=registry)
async def countdown(from_: int, interval: float = 1.0) -> AsyncIterator[int]:
    """Counts down from `from` to 0, a number every `interval` seconds, then completes."""
    global running
    running += 1
    try:
        for n in range(from_, -1, -1):
            yield n
            if n:
                await asyncio.sleep(interval)
    finally:  # also when the client completes, disconnects, or the server stops
        running -= 1


# --8<-- [end:stream]


def on_connect(payload, websocket):
    """`connection_init`: the token names the user and their tenant; unknown tokens: 4403."""
    account = TOKENS.get((payload or {}).get("token"))
    if account is None:
        return False
    user_id, tenant_id = account
    return {"user_id": user_id, "tenant_id": tenant_id}


manager = SubscriptionManager(EventBusConfig.memory(), subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, on_connect=on_connect))


# --8<-- [start:publish]
async def post_message(message: Message, tenant_id: str) -> int:
    """Publishes a new message to its room, for the subscribers of `tenant_id`."""
    return await manager.publish(
        f"room:{message.room_id}", message, event_type="messagePosted", tenant_id=tenant_id
    )


async def close_auction(auction_id: int) -> int:
    """Ends every subscription to the auction in this process (each gets `complete`)."""
    return manager.complete_channel(f"auction:{auction_id}")


# --8<-- [end:publish]
