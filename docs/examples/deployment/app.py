"""The app behind the proxy (docs/guides/deployment.md): its workers share a Redis bus.

REDIS_URL=redis://127.0.0.1:6379/0 uvicorn app:app --workers 4 --port 8000
"""

import os

from fastapi import FastAPI, Request
from pydantic import BaseModel

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()  # (this page's own; by default, one for the whole app)


class Message(BaseModel):
    id: str
    room_id: str
    text: str


@subscription(channel="room:{room_id}", registry=registry)
def message_posted(event, room_id: str) -> Message:
    """New messages in a room."""
    return Message(**event.data)


# --8<-- [start:app]
# In memory, each worker would serve only the subscribers it holds: share a bus.
bus = EventBusConfig.redis(os.environ["REDIS_URL"])
manager = SubscriptionManager(bus, subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)  # the lifespan: complete, then 1001, on shutdown
app.include_router(SubscriptionRouterFactory.create(manager, path="/graphql"))
# --8<-- [end:app]


@app.post("/rooms/{room_id}/messages")
async def post_message(room_id: str, message: Message) -> dict[str, int]:
    """Publishes to every worker's subscribers (0: queued for the bus)."""
    delivered = await manager.publish(f"room:{room_id}", message, event_type="messagePosted")
    return {"delivered": delivered}


# --8<-- [start:client]
@app.get("/client")
async def client(request: Request) -> dict[str, str]:
    """Who the client is, as uvicorn tells it from X-Forwarded-For and X-Forwarded-Proto."""
    assert request.client is not None
    return {"host": request.client.host, "scheme": request.url.scheme}


# --8<-- [end:client]
