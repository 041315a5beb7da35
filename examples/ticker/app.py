"""A live ticker on FastAPI: the `ticks(channel: String!): Tick!` subscription, and HTTP
endpoints to publish ticks, fire bursts and read the manager's metrics.

    python examples/ticker/app.py [--host 127.0.0.1] [--port 8000]

- WebSocket (graphql-transport-ws) and POST at `/graphql`:
  `subscription ($ch: String!) { ticks(channel: $ch) { id value ts } }`
- `POST /publish` `{"channel": "prices", "data": {"id": "1", "value": 42}}` -> `{"delivered": n}`
- `POST /burst` `{"channel": "prices", "count": 1000, "rate": 0}` publishes ticks with ids
  "0".."count-1" at `rate` per second (0: as fast as it can) -> `{"published": n, "seconds": s}`
- `GET /stats`: `manager.get_metrics()`, including `subscribers`
- `GET /metrics`: the same in Prometheus's text format (`fraiseql_fastapi.metrics`)
- GraphiQL at http://127.0.0.1:8000/graphql in a browser; its assets come from a CDN, or from
  the URL in `FRAISEQL_GRAPHIQL_ASSETS` (a static mount of `node_modules` with graphiql, react,
  react-dom and graphql-ws)

The event bus comes from `FRAISEQL_EVENT_BUS`: `memory` (default), a `redis://` / `rediss://`
URL or a `postgresql://` URL; `FRAISEQL_BUS_CA_FILE` names a PEM file of CA certificates the
bus server is verified against (Redis: `tls_ca_file`; PostgreSQL: `sslrootcert`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from pydantic import BaseModel, Field

from fraiseql_fastapi import ID, EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction import ProtocolOptions
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory
from fraiseql_fastapi.metrics import metrics_endpoint

#: This example's own subscriptions (so that importing several examples does not mix them).
registry = SubscriptionRegistry()

#: The largest burst one request may ask for.
MAX_BURST = 1_000_000


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


@subscription(registry=registry)
async def countdown(from_: int) -> AsyncIterator[int]:
    """From `from` down to 0, one value every 100 ms, then `complete`: a stream of its own per
    subscription (an async generator), not a channel."""
    for n in range(from_, -1, -1):
        yield n
        if n:
            await asyncio.sleep(0.1)


class TickData(BaseModel):
    """The tick fields a publisher provides; the server fills `channel` (and `ts`)."""

    id: str | int
    value: int
    ts: float | None = None


class PublishRequest(BaseModel):
    """Body of `POST /publish`."""

    channel: str = Field(min_length=1)
    data: TickData


class BurstRequest(BaseModel):
    """Body of `POST /burst`."""

    channel: str = Field(min_length=1)
    count: int = Field(ge=0, le=MAX_BURST)
    rate: float = Field(default=0.0, ge=0.0)


def bus_from_env(value: str | None = None, ca_file: str | None = None) -> EventBusConfig:
    """The event bus named by `value` (default: `$FRAISEQL_EVENT_BUS`): `memory`, a Redis URL
    or a PostgreSQL URL; `ca_file` (default: `$FRAISEQL_BUS_CA_FILE`) is the CA file its
    server is verified against."""
    value = os.environ.get("FRAISEQL_EVENT_BUS", "memory") if value is None else value
    if ca_file is None:
        ca_file = os.environ.get("FRAISEQL_BUS_CA_FILE") or None
    if value in ("", "memory"):
        return EventBusConfig.memory()
    if value.startswith(("redis://", "rediss://", "unix://", "redis+unix://")):
        return EventBusConfig.redis(value, tls_ca_file=ca_file)
    if value.startswith(("postgresql://", "postgres://")):
        if ca_file:
            separator = "&" if "?" in value else "?"
            value = f"{value}{separator}sslrootcert={quote(ca_file, safe='/')}"
        return EventBusConfig.postgresql(value)
    raise ValueError(
        f"FRAISEQL_EVENT_BUS must be 'memory', a redis:// URL or a postgresql:// URL, not {value!r}"
    )


def tick_data(channel: str, data: TickData) -> dict[str, Any]:
    """The event data of a tick: what was given, plus its channel and, if absent, the time."""
    ts = time.time() if data.ts is None else data.ts
    return {"id": str(data.id), "channel": channel, "value": data.value, "ts": ts}


async def publish_burst(
    manager: SubscriptionManager, channel: str, count: int, rate: float
) -> float:
    """Publishes `count` ticks (ids "0".."count-1", value = id) at `rate` per second, or as
    fast as it can when `rate` is 0; returns the seconds it took."""
    start = time.perf_counter()
    for index in range(count):
        if rate:
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        data = {"id": str(index), "channel": channel, "value": index, "ts": time.time()}
        await manager.publish(channel, data, event_type="tick")
        # Let the connections' senders drain between events, as a server busy elsewhere would.
        await asyncio.sleep(0)
    return time.perf_counter() - start


def create_app(
    bus: EventBusConfig | None = None,
    options: ProtocolOptions | None = None,
    subscriptions: SubscriptionRegistry | None = None,
    graphiql_assets_url: str | None = None,
    positions: bool = False,
) -> FastAPI:
    """The ticker application with a fresh manager (`app.state.manager`); `bus` defaults to
    the one `FRAISEQL_EVENT_BUS` names, `subscriptions` to this module's `ticks` and `countdown`,
    `graphiql_assets_url` to `FRAISEQL_GRAPHIQL_ASSETS` (unset: the CDN); `positions`: every
    `next` carries its event's cursor (clients may also ask, subscription by subscription)."""
    fields = (subscriptions or registry).fields
    manager = SubscriptionManager(bus or bus_from_env(), subscriptions=fields, positions=positions)
    app = FastAPI(title="fraiseql-fastapi ticker", lifespan=manager.lifespan)
    app.state.manager = manager
    assets = graphiql_assets_url or os.environ.get("FRAISEQL_GRAPHIQL_ASSETS") or None
    app.include_router(
        SubscriptionRouterFactory.create(
            manager, path="/graphql", options=options, graphiql_assets_url=assets
        )
    )
    app.add_route("/metrics", metrics_endpoint(manager), include_in_schema=False)

    @app.post("/publish")
    async def publish(request: PublishRequest) -> dict[str, int]:
        """Publishes one tick; answers how many subscriptions received it."""
        data = tick_data(request.channel, request.data)
        delivered = await manager.publish(request.channel, data, event_type="tick")
        return {"delivered": delivered}

    @app.post("/burst")
    async def burst(request: BurstRequest) -> dict[str, Any]:
        """Publishes `count` ticks at `rate` per second; answers when done."""
        seconds = await publish_burst(manager, request.channel, request.count, request.rate)
        return {"published": request.count, "seconds": seconds}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        """The manager's metrics (`subscribers`: active subscriptions)."""
        return manager.get_metrics()

    return app


app = create_app()
manager: SubscriptionManager = app.state.manager


def main(argv: list[str] | None = None) -> None:
    """Serves the ticker with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--native", action="store_true", help="the Rust core owns the WebSockets once upgraded"
    )
    args = parser.parse_args(argv)
    ws: Any = "auto"
    if args.native:
        from fraiseql_fastapi.native.uvicorn import NativeWebSocketProtocol

        ws = NativeWebSocketProtocol
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, ws=ws)


if __name__ == "__main__":
    main()
