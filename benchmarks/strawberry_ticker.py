"""The Strawberry peer of `examples/ticker/app.py`, for the benchmark suite (`suite.py`): the
same schema (`ticks(channel: String!): Tick!`), its `GraphQLRouter` at /graphql speaking
graphql-transport-ws, and the same `POST /publish`, `POST /burst` and `GET /stats`
(`subscribers`) endpoints, so the same load client drives both.

    python benchmarks/strawberry_ticker.py [--host 127.0.0.1] [--port 8001] \
        [--resolver example|pydantic]

Events go through an in-process broadcast: one `asyncio.Queue` per subscriber, registered
under its channel; each subscription is an async generator reading its queue (what a
Strawberry app does per event).

No `from __future__ import annotations` here: Strawberry resolves the annotations at runtime.
"""

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

import strawberry
from fastapi import FastAPI
from pydantic import BaseModel, Field
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

#: The largest burst one request may ask for.
MAX_BURST = 1_000_000


class Broadcast:
    """Per channel, the queues of the live subscribers; publishing puts the event in each."""

    def __init__(self) -> None:
        self._channels: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}

    @contextlib.contextmanager
    def listen(self, channel: str) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        """A queue receiving the events of `channel` while inside."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._channels.setdefault(channel, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._channels[channel]
            queues.discard(queue)
            if not queues:
                del self._channels[channel]

    def publish(self, channel: str, data: dict[str, Any]) -> int:
        """Puts `data` in every queue of `channel`; returns how many."""
        queues = self._channels.get(channel, ())
        for queue in queues:
            queue.put_nowait(data)
        return len(queues)

    @property
    def subscribers(self) -> int:
        """Live subscriptions, all channels together."""
        return sum(len(queues) for queues in self._channels.values())


@strawberry.type(description="One value published on a channel.")
class Tick:
    id: strawberry.ID
    channel: str
    value: int
    ts: float | None = None


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> bool:
        return True


class TickModel(BaseModel):
    """The pydantic model the `pydantic` resolver validates each event into."""

    id: str
    channel: str
    value: int
    ts: float | None = None


def tick(data: dict[str, Any]) -> Tick:
    """The `Tick` of an event's data, as it is."""
    return Tick(
        id=strawberry.ID(data["id"]),
        channel=data["channel"],
        value=data["value"],
        ts=data.get("ts"),
    )


def validated_tick(data: dict[str, Any]) -> Tick:
    """The `Tick` of an event's data validated into a pydantic model first."""
    model = TickModel.model_validate(data)
    return Tick(id=strawberry.ID(model.id), channel=model.channel, value=model.value, ts=model.ts)


def ticker_schema(to_tick: Callable[[dict[str, Any]], Tick]) -> strawberry.Schema:
    """The schema whose `ticks` subscription turns each event into a `Tick` with `to_tick`."""

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def ticks(self, info: strawberry.Info, channel: str) -> AsyncGenerator[Tick, None]:
            """The ticks published on `channel`, in publish order."""
            broadcast: Broadcast = info.context["broadcast"]
            with broadcast.listen(channel) as queue:
                while True:  # until the client completes or goes (the generator is closed)
                    yield to_tick(await queue.get())

    return strawberry.Schema(query=Query, subscription=Subscription)


schema = ticker_schema(tick)
#: The schemas by `--resolver`: the plain one builds `Tick` straight from the event's data.
SCHEMAS = {"example": schema, "pydantic": ticker_schema(validated_tick)}


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


async def publish_burst(broadcast: Broadcast, channel: str, count: int, rate: float) -> float:
    """Publishes `count` ticks (ids "0".."count-1") at `rate` per second (0: as fast as it
    can), yielding to the loop after each as the ticker app does; returns the seconds taken."""
    start = time.perf_counter()
    for index in range(count):
        if rate:
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        broadcast.publish(
            channel, {"id": str(index), "channel": channel, "value": index, "ts": time.time()}
        )
        await asyncio.sleep(0)
    return time.perf_counter() - start


def create_app(resolver: str = "example") -> FastAPI:
    """The Strawberry ticker with a fresh broadcast (`app.state.broadcast`); `resolver` picks
    the schema (`SCHEMAS`)."""
    broadcast = Broadcast()

    async def get_context() -> dict[str, Any]:
        return {"broadcast": broadcast}

    app = FastAPI(title="Strawberry ticker")
    app.state.broadcast = broadcast
    router: GraphQLRouter[Any, Any] = GraphQLRouter(
        SCHEMAS[resolver],
        context_getter=get_context,
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL],
    )
    app.include_router(router, prefix="/graphql")

    @app.post("/publish")
    async def publish(request: PublishRequest) -> dict[str, int]:
        data = request.data
        ts = time.time() if data.ts is None else data.ts
        tick = {"id": str(data.id), "channel": request.channel, "value": data.value, "ts": ts}
        return {"delivered": broadcast.publish(request.channel, tick)}

    @app.post("/burst")
    async def burst(request: BurstRequest) -> dict[str, Any]:
        seconds = await publish_burst(broadcast, request.channel, request.count, request.rate)
        return {"published": request.count, "seconds": seconds}

    @app.get("/stats")
    async def stats() -> dict[str, int]:
        return {"subscribers": broadcast.subscribers}

    return app


app = create_app()


def main(argv: list[str] | None = None) -> None:
    """Serves the Strawberry ticker with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--ws", default="auto", help="uvicorn's WebSocket implementation")
    parser.add_argument("--resolver", choices=sorted(SCHEMAS), default="example")
    args = parser.parse_args(argv)
    served = app if args.resolver == "example" else create_app(args.resolver)
    uvicorn.run(served, host=args.host, port=args.port, log_level=args.log_level, ws=args.ws)


if __name__ == "__main__":
    main()
