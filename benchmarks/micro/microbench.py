"""Shared pieces of the micro-benchmarks: a fan-out fixture object that publishes one event to N
subscribers and checks, after each round, that every subscriber got exactly one `next` frame
with the expected data.

Imported by the test modules as a top-level module (pytest's default import mode puts this
folder, which has no `__init__.py`, on `sys.path`; `conftest.py` makes sure of it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_benchmark.fixture import BenchmarkFixture

from fraiseql_core_rs import PyEvent, PySubscriptionExecutor

if TYPE_CHECKING:  # only in the type stub
    from fraiseql_core_rs import ResolverScope

CHANNEL = "bench"
TICK_QUERY = "subscription { ticks { id channel value } }"
#: The event data: `ts` and `extra` are not selected, so projection has work to do.
TICK_DATA: dict[str, Any] = {
    "id": "1",
    "channel": CHANNEL,
    "value": 42,
    "ts": 1.5,
    "extra": "not selected",
}
#: The `data` of the `next` frame every subscriber must get.
TICK_FRAME_DATA: dict[str, Any] = {"ticks": {"id": "1", "channel": CHANNEL, "value": 42}}
SUBS_PER_CONNECTION = 100

Resolver = Callable[[PyEvent, Any, Any], Any]
T = TypeVar("T")


def pedantic(benchmark: BenchmarkFixture, target: Callable[..., T], **options: Any) -> T:
    """`benchmark.pedantic(target, **options)`, typed (pytest-benchmark's is not)."""
    result = benchmark.pedantic(target, **options)  # type: ignore[no-untyped-call,unused-ignore]
    return result  # type: ignore[no-any-return,unused-ignore]


def identity(event: PyEvent, variables: Any, context: Any) -> Any:
    """A resolver passing the event data through."""
    return event.data


class Fanout:
    """`n` subscriptions to `TICK_QUERY` on one channel, `SUBS_PER_CONNECTION` per connection,
    in a fresh executor whose queues are large enough that nothing is dropped."""

    def __init__(
        self,
        n: int,
        *,
        resolver: Resolver | None = None,
        resolver_scope: ResolverScope = "global",
    ) -> None:
        self.n = n
        # The queue limit is per connection: one round queues SUBS_PER_CONNECTION frames on it.
        self.executor = PySubscriptionExecutor(max_queue=SUBS_PER_CONNECTION * 10)
        self.connections = [f"c{c}" for c in range(-(-n // SUBS_PER_CONNECTION))]
        self.subscription_ids = {f"s{i}" for i in range(n)}
        for i in range(n):
            self.executor.register_subscription(
                f"c{i // SUBS_PER_CONNECTION}",
                f"s{i}",
                TICK_QUERY,
                channels=[CHANNEL],
                resolver=resolver,
                resolver_scope=resolver_scope,
            )
        self.published = 0
        self.delivered = 0
        self.checked = 0

    def publish(self) -> int:
        """The timed part: dispatches one event (filter, resolve, project, serialize, queue)."""
        delivered = self.executor.publish_event("tick", CHANNEL, TICK_DATA)
        self.published += 1
        self.delivered += delivered
        return delivered

    def collect(self, *_: Any) -> None:
        """Drains every connection and checks the frames of the one event published since the
        last call: one `next` frame per subscription, each with `TICK_FRAME_DATA`. Usable as a
        `benchmark.pedantic` teardown; call it again after the benchmark (pedantic does not
        call teardowns when benchmarks are disabled)."""
        frames = [frame for c in self.connections for frame in self.executor.drain(c)]
        if self.published == self.checked:
            assert frames == [], "frames without a publish"
            return
        assert self.published == self.checked + 1, "collect() must follow each publish()"
        self.checked += 1
        assert len(frames) == self.n, (len(frames), self.n)
        # Every frame has the layout of the first one, around its subscription id: check the
        # first completely, then the others by that layout (cheap enough for 100,000 frames).
        first = json.loads(frames[0])
        assert first == {
            "id": first["id"],
            "type": "next",
            "payload": {"data": TICK_FRAME_DATA},
        }, first
        head, tail = frames[0].split(json.dumps(first["id"]), 1)
        ids = set()
        for frame in frames:
            assert frame.startswith(head) and frame.endswith(tail), frame
            ids.add(frame[len(head) + 1 : -len(tail) - 1])
        assert ids == self.subscription_ids

    def finish(self) -> None:
        """Checks the last round and the totals: every publish reached all `n` subscribers."""
        self.collect()
        assert self.published >= 1
        assert self.checked == self.published
        assert self.delivered == self.n * self.published
        metrics = self.executor.get_metrics()
        assert metrics["active_subscriptions"] == self.n
        assert metrics["queue_overflows"] == metrics["frames_dropped"] == 0
        assert metrics["resolver_errors"] == 0

    @property
    def resolver_calls(self) -> int:
        """Resolver calls made since the executor was built."""
        return self.executor.get_metrics()["resolver_calls"]
