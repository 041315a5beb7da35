"""Subscriptions written as async generators (a stream of their own per subscription): values
projected and sent like any other, `complete` when the generator returns, a field error when it
raises, and its `finally` run on client complete, disconnect and shutdown, with nothing left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import protocol_app, running_server, until, ws_client

from fraiseql_fastapi import SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.testing import SubscriptionTestClient

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()
#: What the generators saw: ("start", tag) and ("finally", tag).
LOG: list[tuple[str, str]] = []


@dataclass
class Progress:
    """A job's progress."""

    job: str
    percent: int
    user: str | None = None


@subscription(registry=registry)
async def progress(job: str, steps: int, context: Any) -> AsyncIterator[Progress]:
    """The progress of one job, for the user who asked."""
    LOG.append(("start", job))
    try:
        for step in range(1, steps + 1):
            yield Progress(job=job, percent=100 * step // steps, user=context.user_id)
            await asyncio.sleep(0)
    finally:
        LOG.append(("finally", job))


@subscription(registry=registry)
async def forever(tag: str) -> AsyncIterator[int]:
    """Counts until it is stopped."""
    LOG.append(("start", tag))
    try:
        n = 0
        while True:
            yield n
            n += 1
            await asyncio.sleep(0.01)
    finally:
        LOG.append(("finally", tag))


@subscription(registry=registry)
async def failing() -> AsyncIterator[int]:
    """One value, then an exception."""
    yield 1
    raise RuntimeError("secret detail")


def on_connect(payload: Any, request: Any) -> Any:
    return {"user_id": (payload or {}).get("user")}


def app() -> tuple[Any, SubscriptionManager]:
    return protocol_app(
        registry.fields, on_connect, connection_init_timeout=1.0, ping_interval=None
    )


def gauges(manager: SubscriptionManager) -> tuple[int, int]:
    metrics = manager.get_metrics()
    return metrics["subscribers"], metrics["channels"]


async def test_a_generator_streams_its_values_then_completes() -> None:
    application, manager = app()
    query = 'subscription { progress(job: "j1", steps: 4) { percent user __typename } }'
    async with SubscriptionTestClient(application, connection_params={"user": "ann"}) as client:
        sub = await client.subscribe(query)
        received = [payload async for payload in sub]
    assert received == [
        {"data": {"progress": {"percent": p, "user": "ann", "__typename": "Progress"}}}
        for p in (25, 50, 75, 100)
    ]
    assert ("finally", "j1") in LOG
    assert gauges(manager) == (0, 0)


async def test_each_subscription_has_its_own_stream() -> None:
    application, _ = app()
    query = "subscription ($j: String!) { progress(job: $j, steps: 2) { job percent } }"
    async with SubscriptionTestClient(application) as client:
        first = await client.subscribe(query, {"j": "a"})
        second = await client.subscribe(query, {"j": "b"})
        assert [p["data"]["progress"]["job"] async for p in first] == ["a", "a"]
        assert [p["data"]["progress"]["job"] async for p in second] == ["b", "b"]


@pytest.mark.parametrize("ending", ["complete", "disconnect", "shutdown"])
async def test_the_generators_finally_runs_however_the_subscription_ends(ending: str) -> None:
    application, manager = app()
    tag = f"forever-{ending}"
    async with running_server(application) as address:
        async with ws_client(address) as c:
            await c.init()
            await c.subscribe("1", "subscription ($t: String!) { forever(tag: $t) }", {"t": tag})
            assert (await c.receive())["payload"] == {"data": {"forever": 0}}
            assert (await c.receive())["payload"] == {"data": {"forever": 1}}
            if ending == "complete":
                await c.send({"id": "1", "type": "complete"})
                await until(lambda: ("finally", tag) in LOG)
                assert gauges(manager) == (0, 0)
            elif ending == "shutdown":
                await manager.stop()
                assert ("finally", tag) in LOG
        await until(lambda: ("finally", tag) in LOG)
        await until(lambda: manager.get_metrics()["active_connections"] == 0)
        assert gauges(manager) == (0, 0)


async def test_a_generator_that_raises_sends_a_masked_field_error_then_completes() -> None:
    application, manager = app()
    async with running_server(application) as address, ws_client(address) as c:
        await c.init()
        await c.subscribe("1", "subscription { failing }")
        assert (await c.receive())["payload"] == {"data": {"failing": 1}}
        error = await c.receive()
        assert error["payload"]["errors"][0]["message"] == "Internal server error"
        assert "secret" not in str(error)
        assert await c.receive() == {"id": "1", "type": "complete"}
        assert gauges(manager) == (0, 0)


def test_stream_fields_in_the_schema() -> None:
    sdl = SubscriptionManager(subscriptions=registry.fields).print_schema()
    assert "progress(job: String!, steps: Int!): Progress!" in sdl
    assert "forever(tag: String!): Int!" in sdl
