"""Test helpers: a real uvicorn server on 127.0.0.1, a graphql-transport-ws test client, the
real JavaScript clients (node scripts under tests/js/), and processes of the ticker example
sharing a bus.

Imported by tests as `from helpers import ...` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"


def blocks(page: Path, language: str) -> list[str]:
    """The ```LANGUAGE blocks of `page` (the README, or a page of docs/), in order."""
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.DOTALL)


def fenced(page: Path, heading: str, language: str) -> str:
    """The first ```LANGUAGE block of `page` after `heading`."""
    text = page.read_text()
    section = text[text.index(heading) :]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match is not None, (page, heading, language)
    return match.group(1)


def python_block(heading: str, source: Path = README) -> str:
    """The first ```python block of `source` (the README, or a page of docs/) after
    `heading`."""
    return fenced(source, heading, "python")


def _counters() -> Any:
    from fraiseql_fastapi import subscription
    from fraiseql_fastapi.decorator import SubscriptionRegistry

    registry = SubscriptionRegistry()

    @subscription(registry=registry, channel="counter")
    def counter(event: Any) -> int:
        """A number per event."""
        return int(event.data["n"])

    return registry


#: `counter`, a number per event published on the channel "counter": what most tests
#: subscribe to (`COUNTER`); publish `{"n": ...}`.
counters = _counters()
COUNTER = "subscription { counter }"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def end(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminates `process` unless it has exited, and waits for it; killed after `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_redis(client: Any, process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Until the redis-server `process` just started answers `client`'s PING;
    AssertionError if it exits first or does not answer within `timeout`."""
    import redis

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.ConnectionError):
            if client.ping():
                return
        assert process.poll() is None, "redis-server exited"
        assert time.monotonic() < deadline, "redis-server did not answer"
        time.sleep(0.05)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Waits (polling every 5 ms) until `condition()` holds; TimeoutError after `timeout`."""

    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), timeout)


def protocol_app(
    fields: Sequence[Any],
    on_connect: Any,
    max_queue: int = 1000,
    *,
    on_refresh: Any = None,
    limits: Any = None,
    **options: Any,
) -> tuple[Any, Any]:
    """A FastAPI app serving `fields` on /graphql with `on_connect`, `on_refresh` and
    `ProtocolOptions(**options)`, and its manager (with `limits`): what the protocol tests run
    against."""
    from fastapi import FastAPI

    from fraiseql_fastapi import SubscriptionManager
    from fraiseql_fastapi.http_abstraction import ProtocolOptions
    from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

    manager = SubscriptionManager(subscriptions=fields, max_queue=max_queue, limits=limits)
    app = FastAPI(lifespan=manager.lifespan)
    app.include_router(
        SubscriptionRouterFactory.create(
            manager,
            on_connect=on_connect,
            on_refresh=on_refresh,
            options=ProtocolOptions(**options),
        )
    )
    return app, manager


@contextlib.asynccontextmanager
async def running_server(app: Any, native: bool | None = None) -> AsyncIterator[str]:
    """Serves `app` with uvicorn on a free port of 127.0.0.1; yields "127.0.0.1:PORT".

    `native`: WebSockets served by the Rust core (`fraiseql_fastapi.native`); by default when
    `FRAISEQL_TEST_NATIVE=1`, so that `scripts/test` runs the protocol suites on both paths."""
    if native is None:
        native = os.environ.get("FRAISEQL_TEST_NATIVE") == "1"
    ws: Any = "auto"
    if native:
        from fraiseql_fastapi.native.uvicorn import NativeWebSocketProtocol

        ws = NativeWebSocketProtocol
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", ws=ws
    )
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


JS = ROOT / "tests" / "js"
#: For tests driving the JavaScript clients of tests/js (installed by scripts/install).
js_clients = pytest.mark.skipif(
    shutil.which("node") is None or not (JS / "node_modules" / "graphql-ws").is_dir(),
    reason="node and tests/js/node_modules (scripts/install) are needed",
)


class NodeClient:
    """A node process running a script of tests/js: it prints one JSON object per line on
    stdout (its events) and reads lines (the test's go-aheads) on stdin."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def event(self, timeout: float = 20.0) -> dict[str, Any]:
        """The next line it printed; AssertionError if it exited or reported a failure."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise AssertionError(f"node exited: {await self.stderr()}")
        event: dict[str, Any] = json.loads(line)
        if event.get("event") == "failed":
            raise AssertionError(f"node failed: {event}")
        return event

    async def expect(self, name: str, timeout: float = 20.0) -> dict[str, Any]:
        """The next event, which must be `name`."""
        event = await self.event(timeout)
        assert event["event"] == name, event
        return event

    async def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def finish(self, timeout: float = 20.0) -> int:
        """Closes its stdin; its exit status."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        with contextlib.suppress(asyncio.TimeoutError):
            return (await asyncio.wait_for(self.process.stderr.read(), 2)).decode()
        return ""


@contextlib.asynccontextmanager
async def node_client(script: str, *args: str) -> AsyncIterator[NodeClient]:
    """Runs `node tests/js/SCRIPT ARGS...`; killed on the way out if still running."""
    node = shutil.which("node")
    assert node is not None
    process = await asyncio.create_subprocess_exec(
        node,
        str(JS / script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(JS),
    )
    try:
        yield NodeClient(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


#: Enough to fill a loopback socket's buffers at both ends (`flood`).
FLOOD_BYTES = 16 << 20


def flood(manager: Any, channel: str, data: Callable[[int, str], dict[str, Any]]) -> int:
    """Publishes events of 64 KiB on `channel` (`data(n, text)`), FLOOD_BYTES in all, without
    yielding to the loop: a client in this process reads none of them meanwhile, so a small
    queue overflows whoever writes the socket (a Python sender, or the core, which writes
    until the socket's buffers are full). Returns how many."""
    text = "x" * (64 << 10)
    count = FLOOD_BYTES // len(text)
    for n in range(count):
        manager.executor.publish_event("e", channel, data(n, text))
    return count


async def until_ended(client: Any, result_type: str = "next") -> list[dict[str, Any]]:
    """The messages `client` receives up to the first that is not a result (its `error`)."""
    messages = [await client.receive()]
    while messages[-1]["type"] == result_type:
        messages.append(await client.receive())
    return messages


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


class GatedSocket:
    """A `WebSocketAdapter` offering `subprotocol`, whose sends wait at a gate, like a socket
    whose buffer is full; it records, for every message sent, whether its operation was still
    live in the core. Set `transport` to the `WebSocketTransport` serving it."""

    request = None

    def __init__(self, subprotocol: str = "graphql-transport-ws") -> None:
        self.subprotocols = (subprotocol,)
        self.transport: Any = None
        self.incoming: asyncio.Queue[str] = asyncio.Queue()
        self.gate = asyncio.Event()
        self.gate.set()
        self.sent: list[tuple[dict[str, Any], bool]] = []
        self.closed = False

    @property
    def is_connected(self) -> bool:
        return not self.closed

    async def accept(self, subprotocol: str | None) -> None:
        assert subprotocol == self.subprotocols[0]

    async def receive_text(self) -> str:
        return await self.incoming.get()

    async def send_text(self, text: str) -> None:
        await self.gate.wait()
        message = json.loads(text)
        assert self.transport is not None and self.transport.connection is not None
        live = self.transport.connection.is_live(message.get("id", ""))
        self.sent.append((message, live))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True


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


TICKS = "subscription ($ch: String!) { ticks(channel: $ch) { id value } }"


#: The machine's Redis and PostgreSQL, as the ticker example's FRAISEQL_EVENT_BUS.
BUSES = {
    "redis": "redis://127.0.0.1:6379/0",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
}


@contextlib.contextmanager
def ticker_server(
    bus: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The ticker example in a process of its own on a free port, its bus from `bus`
    (FRAISEQL_EVENT_BUS) and `env`; yields "127.0.0.1:PORT" and the process (ended on exit,
    unless the test killed it)."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "ticker" / "app.py"),
            "--port",
            str(port),
            "--log-level",
            "warning",
            *(["--native"] if os.environ.get("FRAISEQL_TEST_NATIVE") == "1" else []),
        ],
        env={**os.environ, **(env or {}), "FRAISEQL_EVENT_BUS": bus},
    )
    try:
        yield f"127.0.0.1:{port}", process
    finally:
        end(process)


@contextlib.contextmanager
def ticker_process(bus: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`ticker_server`'s address alone."""
    with ticker_server(bus, env) as (address, _):
        yield address


async def ready(http: httpx.AsyncClient, address: str) -> None:
    for _ in range(300):
        with contextlib.suppress(httpx.TransportError):
            await http.get(f"http://{address}/stats")
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} did not start")


async def subscribers(http: httpx.AsyncClient, address: str) -> int:
    count: int = (await http.get(f"http://{address}/stats")).json()["subscribers"]
    return count


async def published(http: httpx.AsyncClient, address: str, count: int) -> None:
    """Waits until the process at `address` has put `count` events on its bus."""
    for _ in range(500):
        if (await http.get(f"http://{address}/stats")).json()["bus_published"] >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{address} did not publish {count} events")


@contextlib.asynccontextmanager
async def subscribed(address: str, channel: str) -> AsyncIterator[Client]:
    async with ws_client(address) as client:
        await client.init()
        await client.subscribe("1", TICKS, {"ch": channel})
        yield client


async def check_processes_share_the_bus(
    bus: str, channel: str, per_server: int = 300, env: Mapping[str, str] | None = None
) -> None:
    """Two ticker processes on `bus`, two subscribers on one and one on the other; publishes
    through each: every subscriber gets every event once, in order."""
    with ticker_process(bus, env) as one, ticker_process(bus, env) as two:
        async with httpx.AsyncClient(timeout=30) as http:
            await ready(http, one)
            await ready(http, two)
            async with (
                subscribed(one, channel) as c1,
                subscribed(one, channel) as c2,
                subscribed(two, channel) as c3,
            ):
                for _ in range(200):
                    if await subscribers(http, one) == 2 and await subscribers(http, two) == 1:
                        break
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.2)  # the bus listens once the subscription is in
                # Publish through each process, one after the other.
                for address in (one, two):
                    for n in range(per_server):
                        response = await http.post(
                            f"http://{address}/publish",
                            json={"channel": channel, "data": {"id": f"{address}-{n}", "value": n}},
                        )
                        response.raise_for_status()
                    # `publish` returns once the event is queued for the bus: let this
                    # process's events be on the bus before the other publishes (two
                    # publishers at once have no order between them).
                    await published(http, address, per_server)
                expected = [f"{a}-{n}" for a in (one, two) for n in range(per_server)]
                for client in (c1, c2, c3):
                    got = [
                        (await client.receive(timeout=20))["payload"]["data"]["ticks"]["id"]
                        for _ in expected
                    ]
                    assert got == expected
                    with pytest.raises(asyncio.TimeoutError):
                        await client.receive(timeout=0.3)  # and nothing more: no duplicate
