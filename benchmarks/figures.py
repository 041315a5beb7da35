"""The suite's figures: per-server summaries over the runs, the targets they are
checked against (what "leading" means for this product), and where they were taken."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios import FLOOR, NATIVE, OURS, OURS_LEGACY, OURS_SSE, POSITIONS, STRAWBERRY

METRICS = (
    "messages_per_second",
    "server_cpu_us_per_message",
    "seconds",
    "client_cpu_seconds",
    "subscribe_seconds",
    "subscriptions_per_second",
    "rss_bytes_per_subscription",
    "connect_seconds",
    "live_seconds",
    "rss_bytes_per_connection",
)
LATENCY_METRICS = ("p50_ms", "p99_ms", "max_ms")


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """Median, min and max, or None for no values."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per metric, the median and the spread over the runs; whether every run passed."""
    summary: dict[str, Any] = {"runs": len(reports), "all_ok": all(r.get("ok") for r in reports)}
    for key in METRICS:
        summary[key] = spread([r[key] for r in reports if isinstance(r.get(key), (int, float))])
    for key in LATENCY_METRICS:
        values = [r["latency"][key] for r in reports if r.get("latency")]
        summary[f"latency_{key}"] = spread(values)
    growth = [g for r in reports if (g := rss_growth(r)) is not None]
    summary["rss_growth"] = spread(growth)
    return summary


def rss_growth(report: dict[str, Any]) -> float | None:
    """Relative growth of the server's RSS from the start of the burst to its end."""
    samples = report.get("rss_samples") or []
    if len(samples) < 2 or not samples[0][2]:
        return None
    return float(samples[-1][2] / samples[0][2] - 1)


@dataclass(frozen=True)
class Target:
    """One target: a measured value against a limit."""

    name: str
    measured: float | None
    limit: float
    higher_is_better: bool = False
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit


def median_of(results: dict[str, Any], scenario: str, server: str, metric: str) -> float | None:
    entry = results.get(scenario, {}).get("servers", {}).get(server, {}).get("summary", {})
    value = entry.get(metric)
    return None if value is None else float(value["median"])


def targets(results: dict[str, Any]) -> list[Target]:
    """The targets that the scenarios run can tell."""
    found: list[Target] = []
    for name in ("fanout_100x1000", "fanout_1000x200", "one_connection_100_subscriptions"):
        if name not in results:
            continue
        ours = median_of(results, name, OURS.label, "messages_per_second")
        peer = median_of(results, name, STRAWBERRY.label, "messages_per_second")
        ratio = ours / peer if ours and peer else None
        found.append(Target(f"{name}: messages/s vs Strawberry", ratio, 7.0, True, "x"))
        cpu = median_of(results, name, OURS.label, "server_cpu_us_per_message")
        floor = median_of(results, name, FLOOR.label, "server_cpu_us_per_message")
        found.append(
            Target(
                f"{name}: server CPU/message vs floor",
                cpu / floor if cpu and floor else None,
                1.25,
                unit="x",
            )
        )
    found.extend(native_targets(results))
    found.extend(positions_targets(results))
    if "protocols_100x1000" in results:
        name = "protocols_100x1000"
        modern = median_of(results, name, OURS.label, "server_cpu_us_per_message")
        for other in (OURS_LEGACY, OURS_SSE):
            cpu = median_of(results, name, other.label, "server_cpu_us_per_message")
            found.append(
                Target(
                    f"{name}: server CPU/message over {other.protocol} vs graphql-transport-ws",
                    cpu / modern if cpu and modern else None,
                    1.25,
                    unit="x",
                )
            )
    if "steady_latency" in results:
        p99 = median_of(results, "steady_latency", OURS.label, "latency_p99_ms")
        found.append(Target("steady_latency: p99", p99, 5.0, unit="ms"))
    for name in ("memory_1k", "memory_10k", "memory_100k"):
        if name in results:
            per = median_of(results, name, OURS.label, "rss_bytes_per_subscription")
            found.append(Target(f"{name}: memory per idle subscription", per, 6 * 1024, unit="B"))
    if "memory_10k" in results:
        live = median_of(results, "memory_10k", OURS.label, "subscribe_seconds")
        found.append(Target("10,000 subscriptions live", live, 1.0, unit="s"))
    if "memory_100k" in results:
        entry = results["memory_100k"]["servers"][OURS.label]["summary"]
        found.append(
            Target(
                "100,000 idle subscriptions in one process",
                1.0 if entry["all_ok"] else 0.0,
                1.0,
                True,
            )
        )
    if "rss_1m_messages" in results:
        growth = median_of(results, "rss_1m_messages", OURS.label, "rss_growth")
        found.append(Target("RSS growth across 1,000,000 messages", growth, 0.10, unit="%"))
    return found


#: The connections scenarios (`scenarios.connections`).
CONNECTIONS_SCENARIOS = ("connections_1k", "connections_5k", "connections_15k")


def native_targets(results: dict[str, Any]) -> list[Target]:
    """The native path's targets: a third of the floor's CPU per message in fan-out, 1 µs on
    one connection (frames share a write), a steady-load p99 no worse than the floor's, at most
    8 KiB per idle connection with its subscription, and 15,000 connections live in 3 s."""
    found: list[Target] = []
    for name in ("fanout_100x1000", "fanout_1000x200"):
        cpu = median_of(results, name, NATIVE.label, "server_cpu_us_per_message")
        floor = median_of(results, name, FLOOR.label, "server_cpu_us_per_message")
        if cpu is not None:
            ratio = cpu / floor if floor else None
            found.append(Target(f"{name}: native CPU/message vs floor", ratio, 1 / 3, unit="x"))
    cpu = median_of(
        results, "one_connection_100_subscriptions", NATIVE.label, "server_cpu_us_per_message"
    )
    if cpu is not None:
        found.append(
            Target("one connection x 100 subscriptions: native CPU/message", cpu, 1.0, unit="µs")
        )
    p99 = median_of(results, "steady_latency", NATIVE.label, "latency_p99_ms")
    floor_p99 = median_of(results, "steady_latency", FLOOR.label, "latency_p99_ms")
    if p99 is not None and floor_p99:
        found.append(Target("steady_latency: native p99 vs floor", p99 / floor_p99, 1.0, unit="x"))
    for name in CONNECTIONS_SCENARIOS:
        if name in results:
            per = median_of(results, name, NATIVE.label, "rss_bytes_per_connection")
            found.append(
                Target(f"{name}: native memory per idle connection", per, 8 * 1024, unit="B")
            )
    if "connections_15k" in results:
        live = median_of(results, "connections_15k", NATIVE.label, "live_seconds")
        found.append(Target("15,000 connections live (native)", live, 3.0, unit="s"))
    return found


def positions_targets(results: dict[str, Any]) -> list[Target]:
    """Resume's cost per event: cursors on every event add at most a tenth to the CPU per
    message, on either path."""
    name = "fanout_100x1000_positions"
    found: list[Target] = []
    for plain in (OURS, NATIVE):
        label = POSITIONS[plain.label]
        with_cursors = median_of(results, name, label, "server_cpu_us_per_message")
        without = median_of(results, name, plain.label, "server_cpu_us_per_message")
        if with_cursors is not None:
            ratio = with_cursors / without if without else None
            found.append(Target(f"{name}: {label} CPU/message vs without", ratio, 1.1, unit="x"))
    return found


def environment() -> dict[str, Any]:
    """Where and with what the figures were taken."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in (
        "fraiseql-fastapi",
        "fraiseql-core-rs",
        "strawberry-graphql",
        "fastapi",
        "starlette",
        "uvicorn",
        "websockets",
        "graphql-core",
        "pydantic",
        "picows",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    cpu_model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            None,
        )
        if Path("/proc/cpuinfo").exists()
        else None
    )

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model,
        "cpu_count": os.cpu_count(),
        "pinned": bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2,
        "versions": versions,
    }
