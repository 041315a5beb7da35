"""Tutorial step 1: one subscription, served on /graphql.

uvicorn step1_app:app
"""

from fastapi import FastAPI
from pydantic import BaseModel

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()  # (the tutorial's own; by default, one for the whole app)


class Message(BaseModel):
    id: str
    room_id: str
    author: str
    text: str


# --8<-- [start:app]
@subscription(channel="room:{room_id}", registry=registry)
def message_posted(event, room_id: str) -> Message:
    """New messages in a room."""
    return Message(**event.data)


manager = SubscriptionManager(EventBusConfig.memory(), subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, path="/graphql"))
# --8<-- [end:app]
