"""Several server processes of the ticker example sharing one bus (FRAISEQL_EVENT_BUS): real
WebSocket clients on each, publishes through each; everyone receives everything, in order,
exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from helpers import Client, free_port, ws_client

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
BUSES = {
    "redis": "redis://127.0.0.1:6379/0",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
}
TICKS = "subscription ($ch: String!) { ticks(channel: $ch) { id value } }"


@contextlib.contextmanager
def ticker_process(bus: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "ticker" / "app.py"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "FRAISEQL_EVENT_BUS": bus},
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


@pytest.mark.parametrize("bus", sorted(BUSES))
async def test_every_process_delivers_everything_once_in_order(bus: str) -> None:
    channel = f"scale-{uuid.uuid4().hex[:8]}"
    per_server = 300
    with ticker_process(BUSES[bus]) as one, ticker_process(BUSES[bus]) as two:
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
                # Publish through each process, one after the other, then both at once.
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
