"""A third-party client against the ticker app: `gql` with its `WebsocketsTransport` speaking
graphql-transport-ws, loading the schema by introspection over the socket, subscribing and
receiving published ticks."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from example_modules import load_module
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport
from helpers import running_server

from fraiseql_fastapi import EventBusConfig

pytestmark = pytest.mark.anyio

TICKS = "subscription Ticks($ch: String!) { ticks(channel: $ch) { id channel value } }"


async def subscribers(http: httpx.AsyncClient) -> int:
    count: int = (await http.get("/stats")).json()["subscribers"]
    return count


async def wait_for_subscribers(http: httpx.AsyncClient, count: int) -> None:
    for _ in range(500):
        if await subscribers(http) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {count} subscribers")


def transport(address: str) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=f"ws://{address}/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        connect_timeout=5,
        ack_timeout=5,
        close_timeout=5,
    )


async def test_gql_subscribes_and_receives_published_ticks() -> None:
    app = load_module("examples/ticker/app.py").create_app(EventBusConfig.memory())
    request = gql(TICKS)
    request.variable_values = {"ch": "gql"}
    received: list[dict[str, Any]] = []

    async with (
        running_server(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
    ):
        client = Client(transport=transport(address), fetch_schema_from_transport=True)
        async with client as session:
            # The schema came by introspection over the socket, and gql validated against it.
            assert client.schema is not None
            assert client.schema.subscription_type is not None
            assert "ticks" in client.schema.subscription_type.fields

            async def collect() -> None:
                async for result in session.subscribe(request):
                    received.append(result)
                    if len(received) == 3:
                        return

            task = asyncio.create_task(collect())
            await wait_for_subscribers(http, 1)
            for i in range(3):
                tick = {"channel": "gql", "data": {"id": i, "value": i * 10}}
                assert (await http.post("/publish", json=tick)).json() == {"delivered": 1}
            await asyncio.wait_for(task, 10)
        await wait_for_subscribers(http, 0)

    assert received == [
        {"ticks": {"id": str(i), "channel": "gql", "value": i * 10}} for i in range(3)
    ]


async def test_gql_runs_a_query_over_the_socket() -> None:
    app = load_module("examples/ticker/app.py").create_app(EventBusConfig.memory())
    async with running_server(app) as address, Client(transport=transport(address)) as session:
        result = await session.execute(gql("{ __typename }"))
    assert result == {"__typename": "Query"}
