"""Resume after reconnect on every bus, end to end: a client whose socket is killed 100 times
while 10,000 events are published gets each one exactly once, in order, by resuming from the
last cursor it received; with Redis and PostgreSQL also across a restart of the server process.
The servers are processes of the ticker example; the events come from `POST /burst` of the
server itself (in-memory bus) or of a second process on the bus."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import Callable

import httpx
import pytest
from helpers import BUSES, TICKS, ready, subscribers, ticker_server, ws_client
from websockets.exceptions import ConnectionClosed, InvalidHandshake

pytestmark = pytest.mark.anyio

EVENTS = 10_000
KILLS = 100
#: Events per second of the burst: the client reconnects about every 50 ms meanwhile.
RATE = 2000


class Resuming:
    """A client that keeps one subscription to `channel` across reconnects: each connection
    subscribes with the last cursor it received, takes some events, then its socket is killed
    (TCP closed, no close frame)."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.ids: list[int] = []
        self.cursor: str | None = None
        self.connections = 0
        self.gaps = 0

    async def run(
        self, address: Callable[[], str], total: int, kills: int, connected: asyncio.Event
    ) -> None:
        per_connection = total // (kills + 1)
        while len(self.ids) < total:
            try:
                await self._connection(address(), total, per_connection, kills, connected)
            except (OSError, ConnectionClosed, InvalidHandshake):
                # The server went away (restarting): try again shortly.
                if self.connections == 0:
                    raise
                await asyncio.sleep(0.05)

    async def _connection(
        self, address: str, total: int, per_connection: int, kills: int, connected: asyncio.Event
    ) -> None:
        async with ws_client(address) as client:
            await client.init()
            extensions = {"resume": True} if self.cursor is None else {"resumeFrom": self.cursor}
            await client.subscribe("1", TICKS, {"ch": self.channel}, extensions=extensions)
            self.connections += 1
            connected.set()
            kill = self.connections <= kills
            taken = 0
            while len(self.ids) < total and (taken < per_connection or not kill):
                message = await client.receive(timeout=30)
                assert message["type"] == "next", message
                payload = message["payload"]
                assert "errors" not in payload, payload
                self.ids.append(int(payload["data"]["ticks"]["id"]))
                self.cursor = payload["extensions"]["cursor"]
                taken += 1
            if kill and len(self.ids) < total:
                client.ws.transport.abort()


async def burst(http: httpx.AsyncClient, address: str, channel: str) -> None:
    response = await http.post(
        f"http://{address}/burst",
        json={"channel": channel, "count": EVENTS, "rate": RATE},
        timeout=120,
    )
    response.raise_for_status()


def check(client: Resuming) -> None:
    assert client.ids == list(range(EVENTS)), (
        f"{len(client.ids)} events, first wrong at "
        f"{next((i for i, n in enumerate(client.ids) if i != n), None)}"
    )
    assert client.connections >= KILLS + 1


async def resume_through_kills(bus: str, restart: bool) -> None:
    channel = f"resume-{uuid.uuid4().hex[:8]}"
    client = Resuming(channel)
    with contextlib.ExitStack() as stack:
        server, process = stack.enter_context(ticker_server(bus))
        # The in-memory bus publishes through the server itself; the others through another
        # process, which goes on while the server restarts.
        publisher = server if bus == "memory" else stack.enter_context(ticker_server(bus))[0]
        current = [server]
        async with httpx.AsyncClient(timeout=30) as http:
            await ready(http, server)
            await ready(http, publisher)
            connected = asyncio.Event()
            receiving = asyncio.create_task(
                client.run(lambda: current[0], EVENTS, KILLS, connected)
            )
            await asyncio.wait_for(connected.wait(), 30)
            for _ in range(300):
                if await subscribers(http, server) == 1:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # the bus listens once the subscription is in
            publishing = asyncio.create_task(burst(http, publisher, channel))
            if restart:
                while len(client.ids) < EVENTS // 3:
                    await asyncio.sleep(0.01)
                process.send_signal(signal.SIGKILL)
                process.wait()
                restarted, _ = stack.enter_context(ticker_server(bus))
                current[0] = restarted
            await asyncio.wait_for(publishing, 120)
            await asyncio.wait_for(receiving, 120)
    check(client)


@pytest.mark.parametrize("bus", ["memory", "redis", "postgresql"])
async def test_a_client_killed_100_times_gets_every_event_once_in_order(bus: str) -> None:
    await resume_through_kills(BUSES.get(bus, "memory"), restart=False)


@pytest.mark.parametrize("bus", ["redis", "postgresql"])
async def test_and_across_a_restart_of_the_server_process(bus: str) -> None:
    await resume_through_kills(BUSES[bus], restart=True)
