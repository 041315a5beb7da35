"""Prometheus metrics of one `SubscriptionManager` (the `prometheus` extra: prometheus-client).

```python
from fraiseql_fastapi.metrics import metrics_endpoint
app.add_route("/metrics", metrics_endpoint(manager))          # FastAPI or Starlette
# or, into a registry of your own:
REGISTRY.register(PrometheusCollector(manager))
```

Every counter and gauge of `manager.get_metrics()` is exported with Prometheus naming
(`fraiseql_` prefix, `_total` on counters), plus `fraiseql_delivery_seconds`, the histogram of
the time from publish to a frame being handed to its connection's sender (kept by the core in
fixed buckets), `fraiseql_connections_closed_total{code}` and `fraiseql_limited_total{limit}`.
Values are read when scraped; nothing is recorded on the event path for Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
except ImportError as missing:
    raise ImportError(
        "fraiseql_fastapi.metrics needs prometheus-client: "
        'pip install "fraiseql-fastapi[prometheus]"'
    ) from missing
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from .limits import Limit

if TYPE_CHECKING:
    from .manager import SubscriptionManager

__all__ = ["PrometheusCollector", "metrics_endpoint"]

PREFIX = "fraiseql_"

#: `get_metrics()` gauges: key -> HELP text.
GAUGES: dict[str, str] = {
    "active_connections": "Connections open",
    "active_subscriptions": "Subscriptions live",
    "channels": "Channels with at least one subscription in this process",
    "resolution_groups": "Groups of subscriptions that share one resolver call per event",
    "queued_frames": "Frames queued for connections, not yet handed to them",
    "pending_resolutions": "Async resolver calls in flight",
    "bus_connected": "1 while the event bus is connected",
    "bus_inbound_pending": "Events received from the bus, waiting to be dispatched",
    "bus_lag_ms": "Milliseconds between publish and receipt of the last event from the bus",
    "bus_publish_queue": "Events waiting to be sent to the bus",
    "bus_channels": "Bus channels this process listens to",
    "native_sockets": "WebSockets served by the core (fraiseql_fastapi.native)",
}

#: `get_metrics()` counters: key -> HELP text (exported as `fraiseql_<key>_total`).
COUNTERS: dict[str, str] = {
    "events_published": "Events dispatched in this process",
    "events_delivered": "Events delivered to subscriptions (one per subscription and event)",
    "frames_queued": "Frames queued for connections",
    "frames_sent": "Frames handed to connections for sending",
    "subscriptions_registered": "Subscriptions registered",
    "subscriptions_refused": "Subscriptions refused by the security check",
    "subscriptions_completed": "Subscriptions ended by the client or a disconnect",
    "resolver_calls": "Resolver calls (one per group of subscriptions and event)",
    "resolver_errors": "Resolver calls that failed (a field error was sent)",
    "resolver_skips": "Resolver calls that returned None (nothing sent)",
    "queue_overflows": "Frames that found their connection's queue full",
    "frames_dropped": "Frames dropped by the drop_oldest overflow policy",
    "frames_conflated": "Frames replaced in a queue by a newer one of a conflated subscription",
    "events_replayed": "Events of a channel's history sent to a resuming subscription",
    "resume_gaps": "Resumes whose cursor the history no longer covered (RESUME_GAP)",
    "frames_held": "Frames held back by their subscription's max_rate until a slot came",
    "bus_events_malformed": "Events from the bus that could not be read",
    "bus_reconnects": "Reconnections of the event bus",
    "bus_published": "Events sent to the bus",
    "bus_received": "Events received from the bus",
    "bus_replayed": "Events read again from the bus's history after a reconnect",
    "bus_duplicates_dropped": "Events from the bus dropped as already seen",
}

#: Counters of events that did not reach a subscription, by why: exported as one counter with
#: a `reason` label.
FILTERED = {
    "events_filtered_event_type": "event_type",
    "events_filtered_tenant": "tenant",
    "events_filtered_user": "user",
    "events_filtered_args": "args",
}

#: Keys of `get_metrics()` exported otherwise, or not at all (text, or another key's alias).
NOT_NUMBERS = {"bus_type", "bus_last_error", "subscribers", "connections_closed", "limited"}


class PrometheusCollector(Collector):
    """A prometheus-client collector for one manager; register it with a `CollectorRegistry`."""

    def __init__(self, manager: SubscriptionManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        metrics = self.manager.get_metrics()
        for key, help_text in GAUGES.items():
            if key in metrics:
                yield GaugeMetricFamily(PREFIX + key, help_text, value=float(metrics[key]))
        for key, help_text in COUNTERS.items():
            if key in metrics:
                yield CounterMetricFamily(PREFIX + key, help_text, value=metrics[key])
        filtered = CounterMetricFamily(
            PREFIX + "events_filtered",
            "Events not delivered to a subscription on their channel, by reason",
            labels=["reason"],
        )
        for key, reason in FILTERED.items():
            filtered.add_metric([reason], metrics[key])
        yield filtered
        closed = CounterMetricFamily(
            PREFIX + "connections_closed",
            "Connections closed, by close code (1006: ended without a close frame)",
            labels=["code"],
        )
        for code, count in sorted(metrics["connections_closed"].items()):
            closed.add_metric([str(code)], count)
        yield closed
        limited = CounterMetricFamily(
            PREFIX + "limited",
            "Requests refused by a limit, by its name (fraiseql_fastapi.limits.Limit)",
            labels=["limit"],
        )
        for name in Limit:
            limited.add_metric([name.value], metrics["limited"].get(name.value, 0))
        yield limited
        yield self._delivery()
        yield InfoMetricFamily(PREFIX + "bus", "The event bus", value={"type": metrics["bus_type"]})

    def _delivery(self) -> HistogramMetricFamily:
        bounds, counts, total = self.manager.executor.delivery_histogram()
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, count in zip([*map(repr, bounds), "+Inf"], counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        return HistogramMetricFamily(
            PREFIX + "delivery_seconds",
            "Time from publish to the frame being handed to its connection for sending",
            buckets=buckets,
            sum_value=total,
        )


def metrics_endpoint(manager: SubscriptionManager) -> Callable[[Request], Any]:
    """A Starlette/FastAPI endpoint serving the manager's metrics in Prometheus's text format:
    `app.add_route("/metrics", metrics_endpoint(manager))`."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PrometheusCollector(manager))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
