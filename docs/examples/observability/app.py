"""Prometheus metrics and logs (docs/guides/prometheus-and-logs.md): a chat room whose events
come from elsewhere as JSON, with the manager's metrics on /metrics.

uvicorn app:app --log-config logging.json

The bus is PostgreSQL when DATABASE_URL is set, else in memory.
"""

import os
from typing import Any

from fastapi import FastAPI
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
    return Message(**event.data)  # an event without `text` fails here: logged, and counted


url = os.environ.get("DATABASE_URL")
bus = EventBusConfig.postgresql(url) if url else EventBusConfig.memory()

# --8<-- [start:metrics]
from fraiseql_fastapi.metrics import metrics_endpoint  # noqa: E402

manager = SubscriptionManager(bus, subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, path="/graphql"))
app.add_route("/metrics", metrics_endpoint(manager), include_in_schema=False)
# --8<-- [end:metrics]


@app.post("/rooms/{room_id}/events")
async def post_event(room_id: str, event: dict[str, Any]) -> dict[str, int]:
    """Publishes an event as it came (from a webhook, another service)."""
    delivered = await manager.publish(f"room:{room_id}", event, event_type="messagePosted")
    return {"delivered": delivered}
