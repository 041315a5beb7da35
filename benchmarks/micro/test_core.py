"""pytest-benchmark micro-benchmarks of the Rust core (`fraiseql_core_rs`) and of resolver calls.

test_core.py (the executor, no resolver):
- `test_dispatch[100|10000|100000]`: `publish_event` of one event to N subscribers on one
  channel (same selection, 100 subscriptions per connection): filter, project, serialize and
  queue a frame each. The queues are drained and checked outside the timed part (every
  subscriber got one `next` frame with the projected data).
- `test_register[repeated|distinct]`: registering 1,000 subscriptions into a fresh executor,
  with one query text for all (the usual case) or 1,000 different texts (each parsed anew).
- `test_projection[10|1000 lines]`: publish + drain for one subscriber of a nested selection
  (an object, an object in it, and a list of objects) over event data with unselected fields
  at every level; the drained frame must be exactly the selection. Converting the whole
  event data from Python (unselected fields included) is most of this time.

test_resolver.py (resolver call overhead, 100 subscribers):
- `test_executor_resolver[none|shared|per_subscriber]`: `publish_event` with no resolver, a
  Python resolver returning `event.data` called once per event for all (scope "global"), and
  the same resolver called once per subscriber (scope "subscription").
- `test_manager_publish[{plain,pydantic}-{shared,per_user}]`: `await manager.publish(...)` of a
  `SubscriptionManager` (memory bus) with a `@subscription` resolver that passes the data
  through or builds a pydantic model, called once per event (no `context` parameter: shared)
  or once per subscriber (takes `context`, scope "user", one user per subscriber); 100
  connections of one subscription each. Each round runs one `loop.run_until_complete`, whose
  own cost (about 10 µs) is included.

`microbench.py` holds the shared fan-out helper. Every benchmark checks what it measured
(frames drained, their content, resolver calls); none asserts on durations.

Run from the repository root (`benchmarks/micro` is outside pyproject's `testpaths`, so name
it):

    .venv/bin/pytest benchmarks/micro --benchmark-disable -q -p no:cacheprovider   # smoke test
    .venv/bin/pytest benchmarks/micro --benchmark-only \\
        --benchmark-json=benchmarks/results/micro.json                            # measure
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from microbench import Fanout, pedantic
from pytest_benchmark.fixture import BenchmarkFixture

from fraiseql_core_rs import PySubscriptionExecutor

# --- dispatch ----------------------------------------------------------------------------------

#: Timed rounds per size: enough for a stable median, few enough to stay quick.
DISPATCH_ROUNDS = {100: 1_000, 10_000: 100, 100_000: 20}


@pytest.mark.parametrize("subscribers", sorted(DISPATCH_ROUNDS))
def test_dispatch(benchmark: BenchmarkFixture, subscribers: int) -> None:
    """One event to `subscribers` subscriptions on one channel (`publish_event` only)."""
    fanout = Fanout(subscribers)
    benchmark.group = "dispatch"
    benchmark.extra_info["subscribers"] = subscribers
    delivered = pedantic(
        benchmark,
        fanout.publish,
        teardown=fanout.collect,
        rounds=DISPATCH_ROUNDS[subscribers],
        warmup_rounds=1,
    )
    assert delivered == subscribers
    fanout.finish()
    assert fanout.resolver_calls == 0


# --- registration --------------------------------------------------------------------------

REGISTRATIONS = 1_000
SUBS_PER_CONNECTION = 100
REPEATED = ["subscription { ticks { id channel value } }"] * REGISTRATIONS
DISTINCT = [f"subscription {{ ticks {{ id channel v{i}: value }} }}" for i in range(REGISTRATIONS)]


@pytest.mark.parametrize("queries", [REPEATED, DISTINCT], ids=["repeated", "distinct"])
def test_register(benchmark: BenchmarkFixture, queries: list[str]) -> None:
    """1,000 `register_subscription` calls (10 connections) into a fresh executor."""

    def fresh() -> tuple[tuple[PySubscriptionExecutor], dict[str, Any]]:
        return (PySubscriptionExecutor(),), {}

    def register(executor: PySubscriptionExecutor) -> PySubscriptionExecutor:
        for i, query in enumerate(queries):
            executor.register_subscription(f"c{i // SUBS_PER_CONNECTION}", f"s{i}", query)
        return executor

    benchmark.group = "register 1,000"
    executor = pedantic(benchmark, register, setup=fresh, rounds=50, warmup_rounds=1)
    metrics = executor.get_metrics()
    assert metrics["active_subscriptions"] == metrics["subscriptions_registered"] == REGISTRATIONS
    assert metrics["active_connections"] == REGISTRATIONS // SUBS_PER_CONNECTION
    assert metrics["subscriptions_refused"] == 0


# --- projection of a nested selection --------------------------------------------------------

ORDERS_QUERY = (
    "subscription { orders { id total customer { id name address { city } } "
    "lines { sku qty price } } }"
)


def order(lines: int) -> dict[str, Any]:
    """An order event with unselected fields at every level."""
    return {
        "id": "o-1",
        "total": 1234.5,
        "status": "PAID",
        "notes": "leave at the door " * 4,
        "customer": {
            "id": "c-7",
            "name": "Ada",
            "email": "ada@example.com",
            "address": {"city": "Paris", "street": "1 rue de Rivoli", "zip": "75001"},
            "tags": ["vip", "early"],
        },
        "lines": [
            {
                "sku": f"sku-{i}",
                "qty": i % 5 + 1,
                "price": 9.99 + i,
                "description": "a thing " * 3,
                "warehouse": {"id": "w-1", "bin": i},
            }
            for i in range(lines)
        ],
    }


def selected(data: dict[str, Any]) -> dict[str, Any]:
    """`ORDERS_QUERY`'s selection of an order, written out by hand."""
    customer = data["customer"]
    return {
        "orders": {
            "id": data["id"],
            "total": data["total"],
            "customer": {
                "id": customer["id"],
                "name": customer["name"],
                "address": {"city": customer["address"]["city"]},
            },
            "lines": [
                {"sku": line["sku"], "qty": line["qty"], "price": line["price"]}
                for line in data["lines"]
            ],
        }
    }


@pytest.mark.parametrize("lines", [10, 1_000], ids=["10 lines", "1000 lines"])
def test_projection(benchmark: BenchmarkFixture, lines: int) -> None:
    """Publish + drain of one nested event for one subscriber."""
    executor = PySubscriptionExecutor()
    executor.register_subscription("c", "s", ORDERS_QUERY)  # channel: "orders", the root field
    data = order(lines)

    def publish_and_drain() -> list[str]:
        assert executor.publish_event("orderUpdated", "orders", data) == 1
        return executor.drain("c")

    benchmark.group = "projection (publish + drain)"
    benchmark.extra_info["lines"] = lines
    frames = pedantic(
        benchmark, publish_and_drain, rounds=1_000 if lines < 100 else 100, warmup_rounds=5
    )
    assert len(frames) == 1
    assert json.loads(frames[0]) == {
        "id": "s",
        "type": "next",
        "payload": {"data": selected(data)},
    }
    assert executor.get_metrics()["queued_frames"] == 0
