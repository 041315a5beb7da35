"""A chat that runs as many processes as you like: its event bus comes from `CHAT_BUS`.

CHAT_BUS=redis://127.0.0.1:6379/0 uvicorn chat:app --workers 4
"""

import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse
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
    """New messages in a room, from every process."""
    return Message(**event.data)


# --8<-- [start:bus]
def bus_config(url: str, ca_file: str | None = None) -> EventBusConfig:
    """The bus `url` names; `ca_file`: the CA certificates a rediss:// server is checked
    against (for PostgreSQL, put `sslrootcert=` in the URL)."""
    if url.startswith(("redis://", "rediss://")):
        return EventBusConfig.redis(url, consumer_group="chat", tls_ca_file=ca_file)
    if url.startswith(("postgresql://", "postgres://")):
        return EventBusConfig.postgresql(url, channel_prefix="chat")
    return EventBusConfig.memory()  # one process only


def make_manager(url: str, ca_file: str | None = None) -> SubscriptionManager:
    return SubscriptionManager(bus_config(url, ca_file), subscriptions=registry.fields)


# --8<-- [end:bus]


# --8<-- [start:app]
def create_app(manager: SubscriptionManager) -> FastAPI:
    app = FastAPI(lifespan=manager.lifespan)  # the bus connects (or fails) at startup
    app.include_router(SubscriptionRouterFactory.create(manager, path="/graphql"))

    @app.post("/rooms/{room_id}/messages")
    async def post_message(room_id: str, message: Message) -> dict[str, int]:
        # With a bus: 0 once queued; every process delivers it when the bus hands it back.
        await manager.publish(f"room:{room_id}", message, event_type="messagePosted")
        return {"pid": os.getpid()}

    @app.get("/health")
    async def health() -> JSONResponse:
        """For the load balancer: 503 while this process has lost its bus."""
        metrics = manager.get_metrics()
        keys = ("bus_connected", "bus_last_error", "bus_publish_queue", "subscribers")
        body = {key: metrics.get(key) for key in keys} | {"pid": os.getpid()}
        return JSONResponse(body, status_code=200 if metrics.get("bus_connected", True) else 503)

    return app


manager = make_manager(os.environ.get("CHAT_BUS", "memory"), os.environ.get("CHAT_BUS_CA_FILE"))
app = create_app(manager)
# --8<-- [end:app]
