"""The subscribers' side of a table whose trigger publishes: the PostgreSQL bus, on the same
database as the table.

DATABASE_URL=postgresql://app@127.0.0.1/app uvicorn app:app
"""

import os

from fastapi import FastAPI
from pydantic import BaseModel

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()  # (this page's own; by default, one for the whole app)


class Message(BaseModel):
    id: str
    room_id: str
    author: str
    text: str


# --8<-- [start:app]
@subscription(channel="room:{room_id}", registry=registry)
def message_posted(event, room_id: str) -> Message:
    """Rows inserted into `messages`: `event.data` is the trigger's jsonb object."""
    return Message(**event.data)


def authenticate(payload, websocket):
    """connection_init: who is this, of which tenant (refuse with False)."""
    payload = payload or {}
    if "user" not in payload or "tenant" not in payload:
        return False
    return {"user_id": payload["user"], "tenant_id": payload["tenant"]}


def create_app(database_url: str) -> FastAPI:
    manager = SubscriptionManager(
        EventBusConfig.postgresql(database_url),  # creates fraiseql_publish() at startup
        subscriptions=registry.fields,
    )
    app = FastAPI(lifespan=manager.lifespan)
    app.state.manager = manager
    app.include_router(
        SubscriptionRouterFactory.create(manager, path="/graphql", on_connect=authenticate)
    )
    return app


app = create_app(os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/app"))
# --8<-- [end:app]
