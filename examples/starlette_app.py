"""The ticker subscription on plain Starlette (no FastAPI).

    python examples/starlette_app.py [--host 127.0.0.1] [--port 8000]

- WebSocket (graphql-transport-ws) and POST at `/graphql`:
  `subscription ($ch: String!) { ticks(channel: $ch) { id value ts } }`
- `POST /publish` `{"channel": "prices", "data": {"id": "1", "value": 42}}` -> `{"delivered": n}`
- `GET /stats`: the manager's metrics, including `subscribers`
- GraphiQL at http://127.0.0.1:8000/graphql in a browser (assets from a CDN, or from the URL in
  `FRAISEQL_GRAPHIQL_ASSETS`)
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fraiseql_fastapi import ID, EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.starlette import create_subscription_app

#: This example's own subscriptions (so that importing several examples does not mix them).
registry = SubscriptionRegistry()


@dataclass
class Tick:
    """One value published on a channel."""

    id: ID
    channel: str
    value: int
    ts: float | None = None


@subscription(channel="{channel}", scope="global", registry=registry)
def ticks(event: Any, channel: str) -> Tick:
    """The ticks published on `channel`, in publish order."""
    data = event.data
    return Tick(id=data["id"], channel=event.channel, value=data["value"], ts=data.get("ts"))


def parse_publish(body: Any) -> tuple[str, dict[str, Any]]:
    """The channel and event data of a `POST /publish` body; ValueError if malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("channel"), str):
        raise ValueError("expected {'channel': str, 'data': {'id': ..., 'value': int}}")
    data = body.get("data")
    if not isinstance(data, dict) or "id" not in data or not isinstance(data.get("value"), int):
        raise ValueError("'data' needs an 'id' and an integer 'value'")
    ts = data.get("ts")
    return body["channel"], {
        "id": str(data["id"]),
        "channel": body["channel"],
        "value": data["value"],
        "ts": time.time() if ts is None else float(ts),
    }


# --8<-- [start:create_app]
def create_app(
    bus: EventBusConfig | None = None, graphiql_assets_url: str | None = None
) -> Starlette:
    """The Starlette ticker with a fresh manager (`app.state.manager`); GraphiQL's assets from
    `graphiql_assets_url`, by default `FRAISEQL_GRAPHIQL_ASSETS` (unset: the CDN)."""
    manager = SubscriptionManager(bus or EventBusConfig.memory(), subscriptions=registry.fields)

    async def publish(request: Request) -> JSONResponse:
        try:
            channel, data = parse_publish(await request.json())
        except ValueError as error:
            return JSONResponse({"detail": str(error)}, status_code=422)
        delivered = await manager.publish(channel, data, event_type="tick")
        return JSONResponse({"delivered": delivered})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(manager.get_metrics())

    app = Starlette(
        routes=[Route("/publish", publish, methods=["POST"]), Route("/stats", stats)],
        lifespan=manager.lifespan,
    )
    app.state.manager = manager
    assets = graphiql_assets_url or os.environ.get("FRAISEQL_GRAPHIQL_ASSETS") or None
    return create_subscription_app(app, manager, path="/graphql", graphiql_assets_url=assets)


# --8<-- [end:create_app]


app = create_app()
manager: SubscriptionManager = app.state.manager


def main(argv: list[str] | None = None) -> None:
    """Serves the app with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
