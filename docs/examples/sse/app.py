"""SSE and the legacy protocol: one app whose /graphql path serves graphql-transport-ws, the
legacy graphql-ws and graphql-sse (both modes) at once.

uvicorn app:app
"""

from fastapi import FastAPI
from pydantic import BaseModel

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()  # (this page's own; by default, one for the whole app)

#: token -> (user, tenant): your identity provider in a real application.
TOKENS = {"ann-token": ("ann", "acme"), "bob-token": ("bob", "globex")}


class Message(BaseModel):
    id: str
    room_id: str
    text: str


@subscription(channel="room:{room_id}", registry=registry)
def message_posted(event, room_id: str) -> Message:
    """New messages in a room."""
    return Message(**event.data)


# --8<-- [start:authenticate]
def authenticate(payload, request):
    """WebSocket: the connection_init payload; SSE: payload is None, read the request."""
    token = (payload or {}).get("token")
    if payload is None:  # SSE (or a connection_init without payload): headers, then cookies
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        token = bearer or request.cookies.get("token")
    if token is None:
        return True  # anonymous: it gets only events published without a tenant or user
    account = TOKENS.get(token)
    if account is None:
        return False  # WebSocket: 4403; SSE: 403, nothing streamed
    user_id, tenant_id = account
    return {"user_id": user_id, "tenant_id": tenant_id}


# --8<-- [end:authenticate]


manager = SubscriptionManager(EventBusConfig.memory(), subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(
    SubscriptionRouterFactory.create(manager, path="/graphql", on_connect=authenticate)
)


@app.post("/rooms/{room_id}/messages")
async def post_message(room_id: str, message: Message, tenant: str | None = None) -> dict:
    """Publishes a message to the room (to one tenant's subscribers with ?tenant=)."""
    channel = f"room:{room_id}"
    delivered = await manager.publish(
        channel, message, event_type="messagePosted", tenant_id=tenant
    )
    return {"delivered": delivered}
