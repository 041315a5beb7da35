"""Frames without polling: each WebSocket gets one subscription's frames from the core's
queue, sent by a task that sleeps until `on_frames` wakes it.

Run it (`python docs/examples/core/drain.py`), then connect any WebSocket client to
ws://127.0.0.1:8765: it receives a graphql-transport-ws `next` message every second."""

import asyncio
import itertools

from websockets.asyncio.server import ServerConnection, serve

from fraiseql_core_rs import PySubscriptionExecutor

executor = PySubscriptionExecutor()
connection_ids = (f"conn{n}" for n in itertools.count(1))


async def send_frames(
    websocket: ServerConnection, connection_id: str, ready: asyncio.Event
) -> None:
    """The connection's sender task."""
    while True:
        await ready.wait()
        ready.clear()
        for text in executor.drain(connection_id):
            await websocket.send(text)


async def handler(websocket: ServerConnection) -> None:
    connection_id = next(connection_ids)
    ready = asyncio.Event()
    executor.open_connection(connection_id, ready.set, max_queue=1000, overflow_policy="lag")
    executor.register_subscription(
        connection_id,
        f"{connection_id}/1",  # unique per executor
        "subscription { ticks { n } }",
        operation_id="1",  # the id the client sees in its frames
    )
    sender = asyncio.create_task(send_frames(websocket, connection_id, ready))
    try:
        await websocket.wait_closed()
    finally:
        sender.cancel()
        executor.remove_connection(connection_id)


async def main() -> None:
    async with serve(handler, "127.0.0.1", 8765):
        for n in itertools.count():
            executor.publish_event("tick", "ticks", {"n": n, "hidden": "not selected"})
            await asyncio.sleep(1)


if __name__ == "__main__":
    asyncio.run(main())
