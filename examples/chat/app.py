"""Multi-tenant chat rooms on FastAPI, with a browser page that speaks graphql-transport-ws.

    python examples/chat/app.py [--host 127.0.0.1] [--port 8000]

then open http://127.0.0.1:8000/ in two windows (try tokens of different tenants).

- `on_connect` reads `{"token": ...}` from `connection_init` and looks it up in `TOKENS`;
  unknown tokens are refused (close code 4403).
- `subscription ($room: String!) { messagePosted(roomId: $room) { id author text ts } }`
- `POST /rooms/{room_id}/messages` with `Authorization: Bearer <token>` and `{"text": "hi"}`
  publishes to the room **of the poster's tenant**: the event carries `tenant_id`, so the Rust
  core delivers it only to connections of that tenant, even in a room of the same name.
- `GET /metrics`: Prometheus metrics of the manager.
- GraphiQL at http://127.0.0.1:8000/graphql: put `{"token": "alice-token"}` in its Headers
  pane (sent as the `connection_init` payload). Its assets come from a CDN, or from the URL in
  `FRAISEQL_GRAPHIQL_ASSETS`.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from fraiseql_fastapi import (
    ID,
    ConnectionContext,
    EventBusConfig,
    SubscriptionManager,
    subscription,
)
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction import ProtocolOptions
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory
from fraiseql_fastapi.metrics import metrics_endpoint

STATIC = Path(__file__).parent / "static"

#: This example's own subscriptions (so that importing several examples does not mix them).
registry = SubscriptionRegistry()


@dataclass(frozen=True)
class Account:
    """Who a token belongs to."""

    user_id: str
    tenant_id: str


#: The demo's accounts: alice and bob work at acme, carol at globex.
TOKENS: dict[str, Account] = {
    "alice-token": Account("alice", "acme"),
    "bob-token": Account("bob", "acme"),
    "carol-token": Account("carol", "globex"),
}


class Message(BaseModel):
    """A message posted in a room."""

    id: ID
    room_id: str
    author: str
    text: str
    ts: float


@subscription(
    channel="room:{room_id}", event_types="messagePosted", scope="tenant", registry=registry
)
async def message_posted(event: Any, room_id: str, context: ConnectionContext) -> Message | None:
    """New messages in a room of the connection's tenant."""
    return Message(**event.data)


class PostMessage(BaseModel):
    """Body of `POST /rooms/{room_id}/messages`."""

    text: str = Field(min_length=1, max_length=2000)


def authenticate(payload: Mapping[str, Any] | None, websocket: Any) -> ConnectionContext | bool:
    """`on_connect`: the account of the `token` in the `connection_init` payload, or False
    (refused with 4403)."""
    account = TOKENS.get(str((payload or {}).get("token")))
    if account is None:
        return False
    return ConnectionContext(
        user_id=account.user_id,
        tenant_id=account.tenant_id,
        ack_payload={"user": account.user_id, "tenant": account.tenant_id},
    )


def bearer_account(authorization: str | None) -> Account:
    """The account of an `Authorization: Bearer <token>` header; 401 otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    account = TOKENS.get(token.strip()) if scheme.lower() == "bearer" else None
    if account is None:
        raise HTTPException(
            status_code=401, detail="Unknown token", headers={"WWW-Authenticate": "Bearer"}
        )
    return account


def create_app(
    bus: EventBusConfig | None = None,
    options: ProtocolOptions | None = None,
    graphiql_assets_url: str | None = None,
) -> FastAPI:
    """The chat application with a fresh manager (`app.state.manager`); GraphiQL's assets from
    `graphiql_assets_url`, by default `FRAISEQL_GRAPHIQL_ASSETS` (unset: the CDN)."""
    manager = SubscriptionManager(bus or EventBusConfig.memory(), subscriptions=registry.fields)
    app = FastAPI(title="fraiseql-fastapi chat", lifespan=manager.lifespan)
    app.state.manager = manager
    assets = graphiql_assets_url or os.environ.get("FRAISEQL_GRAPHIQL_ASSETS") or None
    app.include_router(
        SubscriptionRouterFactory.create(
            manager,
            path="/graphql",
            on_connect=authenticate,
            options=options,
            graphiql_assets_url=assets,
        )
    )

    app.add_route("/metrics", metrics_endpoint(manager), include_in_schema=False)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        """The chat page."""
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.post("/rooms/{room_id}/messages")
    async def post_message(
        room_id: str,
        body: PostMessage,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """Posts a message to a room of the caller's tenant."""
        account = bearer_account(authorization)
        message = Message(
            id=ID(uuid.uuid4().hex),
            room_id=room_id,
            author=account.user_id,
            text=body.text,
            ts=time.time(),
        )
        delivered = await manager.publish(
            f"room:{room_id}",
            message,
            event_type="messagePosted",
            tenant_id=account.tenant_id,
        )
        return {"id": message.id, "delivered": delivered}

    return app


app = create_app()
manager: SubscriptionManager = app.state.manager


def main(argv: list[str] | None = None) -> None:
    """Serves the chat with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
