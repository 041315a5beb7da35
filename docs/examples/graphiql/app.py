"""GraphiQL on the GraphQL path, its assets self-hosted (docs/guides/graphiql.md).

npm install graphiql@3.8.3 react@18.3.1 react-dom@18.3.1 graphql-ws@5.16.2
uvicorn app:app          # then open http://127.0.0.1:8000/graphql in a browser
"""

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles

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


def authenticate(payload, websocket):
    """GraphiQL's Headers pane, e.g. {"token": "ann"}, is this payload."""
    token = (payload or {}).get("token")
    return {"user_id": token} if token else False


manager = SubscriptionManager(EventBusConfig.memory(), subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
# --8<-- [start:self-hosted]
app.include_router(
    SubscriptionRouterFactory.create(
        manager, on_connect=authenticate, graphiql_assets_url="/static/vendor"
    )
)
app.mount("/static/vendor", StaticFiles(directory="node_modules"))  # where npm installed them
# --8<-- [end:self-hosted]


@app.post("/rooms/{room_id}/messages")
async def post_message(room_id: str, message: Message) -> dict[str, int]:
    delivered = await manager.publish(f"room:{room_id}", message, event_type="messagePosted")
    return {"delivered": delivered}
