"""Subscriptions the server ends: a resolver returning `Complete(last)`, and
`manager.complete_channel(channel)`, over each protocol, with nothing left behind."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import protocol_app, running_server, until, ws_client

from fraiseql_fastapi import Complete, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.testing import SubscriptionTestClient

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()


@subscription(registry=registry, channel="auction:{auction_id}")
def bid(event: Any, auction_id: str) -> int | Complete:
    """Bids; the auction's last event (`final`) ends the subscriptions."""
    amount = int(event.data["amount"])
    return Complete(amount) if event.data.get("final") else amount


@subscription(registry=registry, channel="quiet")
async def quiet(event: Any) -> int | Complete | None:
    """Ends without a last value (async)."""
    return Complete() if event.data.get("stop") else int(event.data["n"])


BID = "subscription ($a: String!) { bid(auctionId: $a) }"


def app() -> tuple[Any, SubscriptionManager]:
    return protocol_app(registry.fields, None, connection_init_timeout=1.0, ping_interval=None)


def subscribers(manager: SubscriptionManager) -> int:
    return int(manager.get_metrics()["subscribers"])


async def test_a_resolver_ends_its_subscription_after_a_last_value() -> None:
    application, manager = app()
    async with running_server(application) as address, ws_client(address) as c:
        await c.init()
        await c.subscribe("1", BID, {"a": "x"})
        await until(lambda: subscribers(manager) == 1)
        await manager.publish("auction:x", {"amount": 10})
        await manager.publish("auction:x", {"amount": 12, "final": True})
        await manager.publish("auction:x", {"amount": 99})  # nobody listens any more
        assert await c.receive() == {"id": "1", "type": "next", "payload": {"data": {"bid": 10}}}
        assert await c.receive() == {"id": "1", "type": "next", "payload": {"data": {"bid": 12}}}
        assert await c.receive() == {"id": "1", "type": "complete"}
        metrics = manager.get_metrics()
        assert (metrics["subscribers"], metrics["channels"]) == (0, 0)
        # The id is free again.
        await c.subscribe("1", BID, {"a": "y"})
        await until(lambda: subscribers(manager) == 1)
        await manager.publish("auction:y", {"amount": 1})
        assert (await c.receive())["payload"] == {"data": {"bid": 1}}


async def test_complete_without_a_value_from_an_async_resolver() -> None:
    application, manager = app()
    async with running_server(application) as address, ws_client(address) as c:
        await c.init()
        await c.subscribe("q", "subscription { quiet }")
        await until(lambda: subscribers(manager) == 1)
        await manager.publish("quiet", {"n": 1})
        await manager.publish("quiet", {"stop": True})
        assert (await c.receive())["payload"] == {"data": {"quiet": 1}}
        assert await c.receive() == {"id": "q", "type": "complete"}
        assert subscribers(manager) == 0


def test_complete_is_not_part_of_the_fields_type() -> None:
    manager = SubscriptionManager(subscriptions=registry.fields)
    sdl = manager.print_schema()
    assert "bid(auctionId: String!): Int!" in sdl
    assert "quiet: Int\n" in sdl


async def test_complete_channel_ends_every_subscription_on_it_and_only_those() -> None:
    application, manager = app()
    async with (
        running_server(application) as address,
        ws_client(address) as modern,
        ws_client(address, subprotocols=["graphql-ws"]) as legacy,
    ):
        await modern.init()
        await legacy.init()
        assert (await legacy.receive())["type"] == "ka"
        await modern.subscribe("a", BID, {"a": "x"})
        await modern.subscribe("other", BID, {"a": "y"})
        await legacy.send(
            {"id": "b", "type": "start", "payload": {"query": BID, "variables": {"a": "x"}}}
        )
        await until(lambda: subscribers(manager) == 3)
        await manager.publish("auction:x", {"amount": 5})
        assert manager.complete_channel("auction:x") == 2
        assert manager.complete_channel("auction:none") == 0
        assert (await modern.receive())["payload"] == {"data": {"bid": 5}}
        assert await modern.receive() == {"id": "a", "type": "complete"}
        assert await legacy.receive() == {
            "id": "b",
            "type": "data",
            "payload": {"data": {"bid": 5}},
        }
        assert await legacy.receive() == {"id": "b", "type": "complete"}
        assert subscribers(manager) == 1
        await manager.publish("auction:y", {"amount": 7})
        assert await modern.receive() == {
            "id": "other",
            "type": "next",
            "payload": {"data": {"bid": 7}},
        }


async def test_an_sse_stream_ends_when_its_subscription_is_completed() -> None:
    application, manager = app()
    async with running_server(application) as address, httpx.AsyncClient() as http:
        body = {"query": BID, "variables": {"a": "x"}}
        headers = {"accept": "text/event-stream"}
        async with http.stream(
            "POST", f"http://{address}/graphql", json=body, headers=headers, timeout=5
        ) as response:
            assert response.status_code == 200
            await until(lambda: subscribers(manager) == 1)
            await manager.publish("auction:x", {"amount": 3, "final": True})
            text = ""
            async for chunk in response.aiter_text():  # ends with the response
                text += chunk
        records = [r for r in text.split("\n\n") if r and not r.startswith(":")]
        assert records == ['event: next\ndata: {"data":{"bid":3}}', "event: complete\ndata: "]
        await until(lambda: manager.get_metrics()["active_connections"] == 0)


async def test_with_the_test_client_a_completed_subscription_ends_its_iteration() -> None:
    application, manager = app()
    async with SubscriptionTestClient(application) as client:
        sub = await client.subscribe(BID, {"a": "z"})
        for amount in (1, 2):
            await manager.publish("auction:z", {"amount": amount})
        await manager.publish("auction:z", {"amount": 3, "final": True})
        assert [payload async for payload in sub] == [
            {"data": {"bid": 1}},
            {"data": {"bid": 2}},
            {"data": {"bid": 3}},
        ]
        assert subscribers(manager) == 0
