"""SubscriptionManager with the declarative options of `@subscription` evaluated end to end
(decorator -> schema -> Rust core): argument filters, event types, roles and permissions,
sharing scope, pydantic results; over a real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from helpers import Client, running_server, ws_client
from pydantic import BaseModel

from fraiseql_fastapi import ArgumentFilter, ConnectionContext, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction import ProtocolOptions
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()
calls: list[str] = []


class Trade(BaseModel):
    """A trade."""

    symbol: str
    price: float
    trader_id: str


@subscription(
    registry=registry,
    channel="trades",
    event_types=["tradeExecuted"],
    filters=[
        ArgumentFilter(field="symbol", argument="symbol"),
        ArgumentFilter(field="price", op="gte", argument="min_price"),
    ],
)
def trades(event: Any, symbol: str, min_price: float | None = None) -> Trade:
    """Trades of one symbol, optionally above a price."""
    calls.append(symbol)
    return Trade(**event.data)


@subscription(registry=registry, channel="audit", roles=["auditor"], permissions=["audit:read"])
def audit(event: Any, context: Any) -> str:
    """Audit log lines, for auditors."""
    return f"{context.user_id}: {event.data['line']}"


USERS = {
    "ann": ConnectionContext(
        user_id="ann", roles=frozenset({"auditor"}), permissions=frozenset({"audit:read"})
    ),
    "bo": ConnectionContext(user_id="bo", roles=frozenset({"auditor"})),
    "cy": ConnectionContext(user_id="cy"),
}


def authenticate(payload: Any, websocket: Any) -> Any:
    if (payload or {}).get("token") == "boom":
        raise RuntimeError("the auth service is down")
    return USERS.get((payload or {}).get("token"), True)


@contextlib.asynccontextmanager
async def serve() -> AsyncIterator[tuple[str, SubscriptionManager]]:
    manager = SubscriptionManager(subscriptions=registry.fields)
    app = FastAPI(lifespan=manager.lifespan)
    options = ProtocolOptions(ping_interval=None)
    app.include_router(
        SubscriptionRouterFactory.create(manager, on_connect=authenticate, options=options)
    )
    async with running_server(app) as address:
        yield address, manager


async def subscribed(manager: SubscriptionManager, count: int) -> None:
    for _ in range(500):
        if manager.get_metrics()["subscribers"] == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("subscriptions not registered")


async def next_data(client: Client) -> Any:
    message = await client.receive()
    assert message["type"] == "next", message
    return message["payload"]["data"]


TRADES = "subscription ($s: String!, $min: Float) { trades(symbol: $s, minPrice: $min) { price } }"


async def test_filters_and_event_types_run_in_the_core() -> None:
    calls.clear()
    async with serve() as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("all", TRADES, {"s": "ACME"})
        await c.subscribe("big", TRADES, {"s": "ACME", "min": 100})
        await subscribed(manager, 2)

        async def trade(symbol: str, price: float, kind: str = "tradeExecuted") -> int:
            data = {"symbol": symbol, "price": price, "trader_id": "t"}
            return await manager.publish("trades", data, event_type=kind)

        assert await trade("ACME", 50) == 1
        assert await trade("ACME", 150) == 2
        assert await trade("OTHER", 500) == 0
        assert await trade("ACME", 500, kind="tradeCancelled") == 0
        got = [(await c.receive()) for _ in range(3)]
        assert [(m["id"], m["payload"]["data"]["trades"]["price"]) for m in got] == [
            ("all", 50.0),
            ("all", 150.0),
            ("big", 150.0),
        ]
        # The resolver ignores `context`, so one call serves each distinct argument set.
        assert calls == ["ACME", "ACME", "ACME"]
        metrics = manager.get_metrics()
        assert metrics["events_filtered_args"] == 1 + 2
        assert metrics["events_filtered_event_type"] == 2


async def test_roles_and_permissions() -> None:
    async with serve() as (address, manager):
        for token, allowed in (("ann", True), ("bo", False), ("cy", False)):
            async with ws_client(address) as c:
                await c.init({"token": token})
                await c.subscribe("1", "subscription { audit }")
                if allowed:
                    await subscribed(manager, 1)
                    await manager.publish("audit", {"line": "login"})
                    assert await next_data(c) == {"audit": "ann: login"}
                else:
                    error = await c.receive()
                    assert error["type"] == "error"
                    assert error["payload"][0]["extensions"]["code"] == "FORBIDDEN"
            await subscribed(manager, 0)


async def test_on_connect_failure_is_an_internal_error() -> None:
    async with serve() as (address, _), ws_client(address) as c:
        await c.send({"type": "connection_init", "payload": {"token": "boom"}})
        assert await c.closed_with() == (4500, "Internal server error")


async def test_a_manager_without_subscriptions_publishes_and_answers_queries() -> None:
    """An application that only publishes (or a script that installs the SQL) needs no
    subscription of its own."""
    manager = SubscriptionManager(subscriptions=[])
    await manager.start()
    try:
        assert await manager.publish("room:1", {"text": "hi"}) == 0
        assert "type Subscription" not in manager.print_schema()
    finally:
        await manager.stop()
