"""The framework floor: a plain Starlette WebSocket endpoint that forwards one pre-serialized
JSON frame per subscriber, with no GraphQL at all. Nothing on Starlette and uvicorn can send a
frame for much less than this, so it shows how close a GraphQL server comes to the limit.

    python benchmarks/floor_server.py [--host 127.0.0.1] [--port 8002]

It speaks just enough graphql-transport-ws for the load client: `connection_init` gets an ack,
`subscribe` registers the operation id under the `ch` variable's channel (the query is not
parsed; the frame has `ts` only if the query's text has it), `complete` and disconnects
unregister, `ping` gets a pong. Each connection has a deque of frames and one sender task woken
by an event, as a server that must not block its publisher on a slow client does. The same
`POST /publish`, `POST /burst` and `GET /stats` (`subscribers`) as the ticker example.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SUBPROTOCOL = "graphql-transport-ws"
#: The largest burst one request may ask for.
MAX_BURST = 1_000_000


class Connection:
    """One client: its pending frames and the sender's wake-up."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.frames: deque[str] = deque()
        self.ready = asyncio.Event()

    def push(self, frame: str) -> None:
        self.frames.append(frame)
        self.ready.set()

    async def send_forever(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            frames = self.frames
            while frames:
                await self.websocket.send_text(frames.popleft())


class Subscriber:
    """One subscription: where its frames go, its frame's prefix and whether it wants `ts`."""

    __slots__ = ("connection", "op_id", "prefix", "with_ts")

    def __init__(self, connection: Connection, op_id: str, with_ts: bool) -> None:
        self.connection = connection
        self.op_id = op_id
        self.prefix = '{"id":' + json.dumps(op_id) + ',"type":"next","payload":{"data":{"ticks":'
        self.with_ts = with_ts


class Broadcast:
    """Per channel, the subscribers; publishing serializes each shape of the event once."""

    def __init__(self) -> None:
        self.channels: dict[str, dict[tuple[int, str], Subscriber]] = {}

    def add(self, channel: str, subscriber: Subscriber) -> None:
        key = (id(subscriber.connection), subscriber.op_id)
        self.channels.setdefault(channel, {})[key] = subscriber

    def remove(self, channel: str, connection: Connection, op_id: str) -> None:
        subscribers = self.channels.get(channel)
        if subscribers is not None:
            subscribers.pop((id(connection), op_id), None)
            if not subscribers:
                del self.channels[channel]

    def publish(self, channel: str, tick: dict[str, Any]) -> int:
        subscribers = self.channels.get(channel)
        if not subscribers:
            return 0
        body = json.dumps({"id": tick["id"], "value": tick["value"]}) + "}}}"
        body_ts = json.dumps(tick) + "}}}"
        for subscriber in subscribers.values():
            subscriber.connection.push(
                subscriber.prefix + (body_ts if subscriber.with_ts else body)
            )
        return len(subscribers)

    @property
    def subscribers(self) -> int:
        return sum(len(subscribers) for subscribers in self.channels.values())


async def serve(websocket: WebSocket) -> None:
    """One connection: the handshake, then subscribe/complete/ping until it goes."""
    broadcast: Broadcast = websocket.app.state.broadcast
    await websocket.accept(subprotocol=SUBPROTOCOL)
    connection = Connection(websocket)
    sender = asyncio.create_task(connection.send_forever())
    operations: dict[str, str] = {}  # op id -> channel
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            kind = message.get("type")
            if kind == "connection_init":
                connection.push('{"type":"connection_ack"}')
            elif kind == "subscribe":
                op_id = str(message["id"])
                payload = message.get("payload") or {}
                channel = str((payload.get("variables") or {}).get("ch", ""))
                with_ts = "ts" in payload.get("query", "")
                broadcast.add(channel, Subscriber(connection, op_id, with_ts))
                operations[op_id] = channel
            elif kind == "complete":
                op_id = str(message.get("id"))
                if op_id in operations:
                    broadcast.remove(operations.pop(op_id), connection, op_id)
            elif kind == "ping":
                connection.push('{"type":"pong"}')
    except WebSocketDisconnect:
        pass
    finally:
        for op_id, channel in operations.items():
            broadcast.remove(channel, connection, op_id)
        sender.cancel()


async def publish_burst(broadcast: Broadcast, channel: str, count: int, rate: float) -> float:
    """Publishes `count` ticks (ids "0".."count-1") at `rate` per second (0: as fast as it
    can), yielding to the loop after each as the ticker example does; returns the seconds."""
    start = time.perf_counter()
    for index in range(count):
        if rate:
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        tick = {"id": str(index), "channel": channel, "value": index, "ts": time.time()}
        broadcast.publish(channel, tick)
        await asyncio.sleep(0)
    return time.perf_counter() - start


async def publish(request: Request) -> JSONResponse:
    broadcast: Broadcast = request.app.state.broadcast
    body = await request.json()
    data = body["data"]
    tick = {
        "id": str(data["id"]),
        "channel": body["channel"],
        "value": data["value"],
        "ts": data.get("ts") or time.time(),
    }
    return JSONResponse({"delivered": broadcast.publish(body["channel"], tick)})


async def burst(request: Request) -> JSONResponse:
    body = await request.json()
    count = int(body["count"])
    if not 0 <= count <= MAX_BURST:
        return JSONResponse({"detail": f"count must be in 0..{MAX_BURST}"}, status_code=422)
    broadcast: Broadcast = request.app.state.broadcast
    seconds = await publish_burst(broadcast, body["channel"], count, float(body.get("rate", 0)))
    return JSONResponse({"published": count, "seconds": seconds})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse({"subscribers": request.app.state.broadcast.subscribers})


def create_app() -> Starlette:
    """The floor server with a fresh broadcast (`app.state.broadcast`)."""
    app = Starlette(
        routes=[
            WebSocketRoute("/graphql", serve),
            Route("/publish", publish, methods=["POST"]),
            Route("/burst", burst, methods=["POST"]),
            Route("/stats", stats),
        ]
    )
    app.state.broadcast = Broadcast()
    return app


app = create_app()


def main(argv: list[str] | None = None) -> None:
    """Serves the floor with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--ws", default="auto", help="uvicorn's WebSocket implementation")
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, ws=args.ws)


if __name__ == "__main__":
    main()
