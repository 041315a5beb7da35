"""Test helpers: a real uvicorn server on 127.0.0.1 and a graphql-transport-ws test client.

Imported by tests as `from helpers import ...` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

README = Path(__file__).parent.parent / "README.md"


def python_block(heading: str) -> str:
    """The first ```python block of the README after `heading`."""
    text = README.read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_server(app: Any) -> AsyncIterator[str]:
    """Serves `app` with uvicorn on a free port of 127.0.0.1; yields "127.0.0.1:PORT"."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Client:
    """A minimal graphql-transport-ws client over a real WebSocket, for asserting the protocol
    message by message."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(text, str), "frames must be text"
        result: dict[str, Any] = json.loads(text)
        return result

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await self.send(message)
        return await self.receive()

    async def subscribe(
        self, op_id: str, query: str, variables: dict[str, Any] | None = None, **extra: Any
    ) -> None:
        payload: dict[str, Any] = {"query": query, **extra}
        if variables is not None:
            payload["variables"] = variables
        await self.send({"id": op_id, "type": "subscribe", "payload": payload})

    async def closed_with(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Waits for the server to close; returns (code, reason)."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed as closed:
            received = closed.rcvd
            return (received.code, received.reason) if received else (None, "")


@contextlib.asynccontextmanager
async def ws_client(
    address: str, path: str = "/graphql", subprotocols: list[str] | None = None
) -> AsyncIterator[Client]:
    protocols = ["graphql-transport-ws"] if subprotocols is None else subprotocols
    async with connect(
        f"ws://{address}{path}",
        subprotocols=protocols,  # type: ignore[arg-type]
        open_timeout=5,
    ) as ws:
        yield Client(ws)


async def assert_quick_start_delivers(address: str) -> None:
    """The README quick start's exchange against a server at `address`: a subscription to room
    42, a message posted over HTTP, and its `next`, projected onto the selection."""
    async with ws_client(address) as client:
        assert await client.init({"token": "ann"}) == {"type": "connection_ack"}
        await client.subscribe(
            "1",
            "subscription ($room: String!) { messagePosted(roomId: $room) { id text } }",
            {"room": "42"},
        )
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            for _ in range(200):  # until the subscription is registered
                message = {"id": "1", "room_id": "42", "text": "hi"}
                response = await http.post("/rooms/42/messages", json=message)
                if response.json()["delivered"]:
                    break
                await asyncio.sleep(0.01)
        assert response.json() == {"delivered": 1}
        assert await client.receive() == {
            "id": "1",
            "type": "next",
            "payload": {"data": {"messagePosted": {"id": "1", "text": "hi"}}},
        }
