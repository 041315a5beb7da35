"""Prometheus metrics (`fraiseql_fastapi.metrics`): the ticker and chat examples serve
`GET /metrics`; scraped over HTTP while real clients connect, subscribe, fail and close, and
parsed with prometheus-client's own parser."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from example_modules import load_module
from helpers import ws_client
from prometheus_client.parser import text_string_to_metric_families
from test_examples import ROOM, TICKS, serving, wait_for_stats, wait_for_subscribers, wait_until

from fraiseql_fastapi import EventBusConfig, SubscriptionManager
from fraiseql_fastapi.metrics import COUNTERS, FILTERED, GAUGES, NOT_NUMBERS

pytestmark = pytest.mark.anyio


async def scrape(http: httpx.AsyncClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """`GET /metrics`, parsed: sample name -> {sorted labels: value}."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.documentation, f"{family.name} has HELP text"
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    result: float = samples[name][tuple(sorted(labels.items()))]
    return result


async def test_ticker_metrics_follow_what_happens() -> None:
    app = load_module("examples/ticker/app.py").create_app(EventBusConfig.memory())
    async with serving(app) as (address, http):
        async with ws_client(address) as client:
            await client.init()
            await client.subscribe("1", TICKS, {"ch": "prices"})
            await wait_for_stats(http, 1)
            for i in range(20):
                await http.post(
                    "/publish", json={"channel": "prices", "data": {"id": i, "value": i}}
                )
            for _ in range(20):
                assert (await client.receive())["type"] == "next"
            samples = await scrape(http)
            assert value(samples, "fraiseql_active_connections") == 1
            assert value(samples, "fraiseql_active_subscriptions") == 1
            assert value(samples, "fraiseql_events_published_total") == 20
            assert value(samples, "fraiseql_frames_sent_total") == 20
            assert value(samples, "fraiseql_queue_overflows_total") == 0
            assert value(samples, "fraiseql_resolver_errors_total") == 0
            assert value(samples, "fraiseql_bus_info", type="memory") == 1
            # The histogram: one observation per frame handed over, cumulative buckets.
            assert value(samples, "fraiseql_delivery_seconds_count") == 20
            assert value(samples, "fraiseql_delivery_seconds_bucket", le="+Inf") == 20
            buckets = sorted(
                (float(dict(labels)["le"]), count)
                for labels, count in samples["fraiseql_delivery_seconds_bucket"].items()
            )
            counts = [count for _, count in buckets]
            assert counts == sorted(counts), "cumulative"
            assert 0 < value(samples, "fraiseql_delivery_seconds_sum") < 20 * 5
            await client.ws.close()  # 1000 from the client
        async with ws_client(address, subprotocols=["mqtt"]) as refused:
            assert (await refused.closed_with())[0] == 4406

        async def closed_counted() -> bool:
            closed = (await scrape(http)).get("fraiseql_connections_closed_total", {})
            return len(closed) == 2

        await wait_until(closed_counted)
        samples = await scrape(http)
        assert value(samples, "fraiseql_connections_closed_total", code="1000") == 1
        assert value(samples, "fraiseql_connections_closed_total", code="4406") == 1
        assert value(samples, "fraiseql_active_connections") == 0


async def test_chat_metrics_count_refusals_and_filtered_events() -> None:
    chat = load_module("examples/chat/app.py")
    app = chat.create_app(EventBusConfig.memory())
    async with serving(app) as (address, http):
        async with ws_client(address) as refused:
            await refused.send({"type": "connection_init", "payload": {"token": "nobody"}})
            assert (await refused.closed_with())[0] == 4403
        token, account = next(iter(chat.TOKENS.items()))
        other = next(t for t, a in chat.TOKENS.items() if a.tenant_id != account.tenant_id)
        async with ws_client(address) as client:
            await client.init({"token": token})
            await client.subscribe("1", ROOM, {"room": "lobby"})
            await wait_for_subscribers(app.state.manager, 1)
            headers = {"Authorization": f"Bearer {other}"}
            await http.post("/rooms/lobby/messages", json={"text": "elsewhere"}, headers=headers)
            samples = await scrape(http)
            assert value(samples, "fraiseql_events_filtered_total", reason="tenant") == 1
            assert value(samples, "fraiseql_events_filtered_total", reason="user") == 0
        samples = await scrape(http)
        assert value(samples, "fraiseql_connections_closed_total", code="4403") == 1


async def test_every_number_of_get_metrics_is_exported() -> None:
    """A metric added to the core must get a Prometheus name (or be listed as not a number)."""
    known = set(GAUGES) | set(COUNTERS) | set(FILTERED) | NOT_NUMBERS
    fields = load_module("examples/ticker/app.py").registry.fields
    manager = SubscriptionManager(
        EventBusConfig.redis("redis://127.0.0.1:6379/0", consumer_group="metrics-test"),
        subscriptions=fields,
    )
    await manager.start()
    try:
        memory = SubscriptionManager(subscriptions=fields)
        for metrics in (memory.get_metrics(), manager.get_metrics()):
            assert set(metrics) - known == set()
            for key in metrics.keys() - NOT_NUMBERS:
                assert isinstance(metrics[key], int | bool), key
    finally:
        await manager.stop()
