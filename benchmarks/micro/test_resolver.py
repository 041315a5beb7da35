"""Resolver call overhead, 100 subscribers: the executor with no resolver, one shared call, one
call per subscriber; and `SubscriptionManager.publish` with `@subscription` resolvers (see
test_core.py's docstring for the whole suite and the commands)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, cast

import pytest
from microbench import CHANNEL, TICK_DATA, Fanout, Resolver, identity, pedantic
from pydantic import BaseModel
from pytest_benchmark.fixture import BenchmarkFixture

from fraiseql_fastapi import ConnectionContext, EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry

if TYPE_CHECKING:  # only in the type stub
    from fraiseql_core_rs import ResolverScope

SUBSCRIBERS = 100
ROUNDS = 1_000

# --- executor ----------------------------------------------------------------------------------

#: (resolver, its scope, resolver calls per event)
EXECUTOR_CASES: dict[str, tuple[Resolver | None, ResolverScope, int]] = {
    "none": (None, "global", 0),
    "shared": (identity, "global", 1),
    "per_subscriber": (identity, "subscription", SUBSCRIBERS),
}


@pytest.mark.parametrize("case", list(EXECUTOR_CASES))
def test_executor_resolver(benchmark: BenchmarkFixture, case: str) -> None:
    """`publish_event` to 100 subscribers, with 0, 1 or 100 Python resolver calls."""
    resolver, scope, calls_per_event = EXECUTOR_CASES[case]
    fanout = Fanout(SUBSCRIBERS, resolver=resolver, resolver_scope=scope)
    benchmark.group = "resolver: executor, 100 subscribers"
    benchmark.extra_info["resolver_calls_per_event"] = calls_per_event
    delivered = pedantic(
        benchmark, fanout.publish, teardown=fanout.collect, rounds=ROUNDS, warmup_rounds=1
    )
    assert delivered == SUBSCRIBERS
    fanout.finish()
    assert fanout.resolver_calls == calls_per_event * fanout.published


# --- manager -----------------------------------------------------------------------------------

#: This module's subscriptions, kept out of the default registry.
registry = SubscriptionRegistry()


class Tick(BaseModel):
    """A tick."""

    id: str
    channel: str
    value: int


@subscription(registry=registry, channel=CHANNEL)
def plain_ticks(event: Any) -> Tick:
    """The event data as it is (read by key); one call per event for everyone."""
    return cast(Tick, event.data)


@subscription(registry=registry, channel=CHANNEL)
def model_ticks(event: Any) -> Tick:
    """A pydantic model of the event data; one call per event for everyone."""
    return Tick.model_validate(event.data)


@subscription(registry=registry, channel=CHANNEL, scope="user")
def plain_ticks_per_user(event: Any, context: Any) -> Tick:
    """As `plain_ticks`, but taking `context`: one call per event and user."""
    return cast(Tick, event.data)


@subscription(registry=registry, channel=CHANNEL, scope="user")
def model_ticks_per_user(event: Any, context: Any) -> Tick:
    """As `model_ticks`, but taking `context`: one call per event and user."""
    return Tick.model_validate(event.data)


#: (field name, resolver calls per event)
MANAGER_CASES: dict[str, tuple[str, int]] = {
    "plain-shared": ("plainTicks", 1),
    "pydantic-shared": ("modelTicks", 1),
    "plain-per_user": ("plainTicksPerUser", SUBSCRIBERS),
    "pydantic-per_user": ("modelTicksPerUser", SUBSCRIBERS),
}


class ManagerFanout:
    """A manager serving one field to `SUBSCRIBERS` connections of one subscription each."""

    def __init__(self, field_name: str) -> None:
        (field,) = [f for f in registry.fields if f.name == field_name]
        self.manager = SubscriptionManager(
            EventBusConfig.memory(), subscriptions=[field], max_queue=1_000
        )
        self.field_name = field_name
        prepared = self.manager.prepare(
            f"subscription {{ {field_name} {{ id channel value }} }}", None, None
        )
        assert not isinstance(prepared, list), prepared
        self.connections = []
        self.woken = [asyncio.Event() for _ in range(SUBSCRIBERS)]
        for i in range(SUBSCRIBERS):
            connection = self.manager.connect(on_frames=self.woken[i].set)
            connection.context = ConnectionContext(user_id=f"u{i}")
            assert connection.subscribe("1", prepared) is None
            self.connections.append(connection)
        self.loop = asyncio.new_event_loop()
        self.published = self.checked = 0

    def publish(self) -> int:
        """The timed part: one `await manager.publish(...)`."""
        self.published += 1
        return self.loop.run_until_complete(
            self.manager.publish(CHANNEL, TICK_DATA, event_type="tick")
        )

    def collect(self, *_: Any) -> None:
        """Drains every connection; each must hold one `next` frame with the tick (when an
        event was published since the last call)."""
        frames = [c.drain() for c in self.connections]
        if self.published == self.checked:
            assert not any(frames)
            return
        self.checked += 1
        expected = {
            "id": "1",
            "type": "next",
            "payload": {"data": {self.field_name: {"id": "1", "channel": CHANNEL, "value": 42}}},
        }
        for woken, queued in zip(self.woken, frames, strict=True):
            assert [json.loads(frame) for frame in queued] == [expected]
            assert woken.is_set()
            woken.clear()

    def resolver_calls(self) -> int:
        """Resolver calls since the manager was built."""
        return int(self.manager.get_metrics()["resolver_calls"])

    def close(self) -> None:
        """Closes the event loop."""
        self.loop.close()


@pytest.mark.parametrize("case", list(MANAGER_CASES))
def test_manager_publish(benchmark: BenchmarkFixture, case: str) -> None:
    """`await manager.publish(...)` of one event to 100 subscribers."""
    field_name, calls_per_event = MANAGER_CASES[case]
    fanout = ManagerFanout(field_name)
    benchmark.group = "resolver: manager.publish, 100 subscribers"
    benchmark.extra_info["resolver_calls_per_event"] = calls_per_event
    try:
        delivered = pedantic(
            benchmark, fanout.publish, teardown=fanout.collect, rounds=ROUNDS, warmup_rounds=1
        )
        fanout.collect()  # the last round, when benchmarks are disabled
    finally:
        fanout.close()
    assert delivered == SUBSCRIBERS
    assert fanout.published >= 1 and fanout.checked == fanout.published
    assert fanout.resolver_calls() == calls_per_event * fanout.published
    metrics = fanout.manager.get_metrics()
    assert metrics["subscribers"] == SUBSCRIBERS
    assert metrics["resolver_errors"] == metrics["queue_overflows"] == 0
