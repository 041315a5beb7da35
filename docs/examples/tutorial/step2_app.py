"""Tutorial step 2: who is connecting (tenants), and an endpoint that publishes.

uvicorn step2_app:app
"""

import uuid
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()

#: token -> (user, tenant): your identity provider in a real application.
TOKENS = {"alice": ("alice", "acme"), "bob": ("bob", "acme"), "carol": ("carol", "globex")}


class Message(BaseModel):
    id: str
    room_id: str
    author: str
    text: str


class NewMessage(BaseModel):
    text: str


@subscription(channel="room:{room_id}", registry=registry)
def message_posted(event, room_id: str) -> Message:
    """New messages in a room of the subscriber's tenant."""
    return Message(**event.data)


# --8<-- [start:on_connect]
def on_connect(payload, websocket):
    """`connection_init`: the token names the user and their tenant; unknown tokens: 4403."""
    account = TOKENS.get((payload or {}).get("token"))
    if account is None:
        return False
    user_id, tenant_id = account
    return {"user_id": user_id, "tenant_id": tenant_id}


# --8<-- [end:on_connect]


manager = SubscriptionManager(EventBusConfig.memory(), subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(
    SubscriptionRouterFactory.create(manager, path="/graphql", on_connect=on_connect)
)


@app.post("/rooms/{room_id}/messages")
async def post_message(
    room_id: str, body: NewMessage, authorization: Annotated[str, Header()] = ""
) -> dict[str, int]:
    account = TOKENS.get(authorization.removeprefix("Bearer "))
    if account is None:
        raise HTTPException(401, "unknown token")
    user_id, tenant_id = account
    message = Message(id=uuid.uuid4().hex, room_id=room_id, author=user_id, text=body.text)
    # tenant_id: only subscribers of this tenant receive it, whatever the room's name.
    delivered = await manager.publish(
        f"room:{room_id}", message, event_type="messagePosted", tenant_id=tenant_id
    )
    return {"delivered": delivered}
