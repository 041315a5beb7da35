"""An existing Strawberry schema: its queries stay, our subscriptions join it on one path.

uvicorn strawberry_app:app
"""

import strawberry
from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()  # (this page's own; by default, one for the whole app)


@strawberry.type
class Message:
    id: strawberry.ID
    room_id: str
    text: str


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, info: strawberry.Info) -> str:
        return f"hello {info.context['user']}"


@subscription(channel="room:{room_id}", registry=registry)
async def message_posted(event, room_id: str) -> Message:  # Strawberry's own type
    return event.data


def current_user(request: HTTPConnection) -> str | None:  # headers and cookies, HTTP and WS
    return request.cookies.get("user")


def get_context(request: HTTPConnection, user: str | None = Depends(current_user)) -> dict:
    return {"request": request, "user": user}


manager = SubscriptionManager(
    EventBusConfig.memory(), schema=strawberry.Schema(query=Query), subscriptions=registry.fields
)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, context_getter=get_context))
