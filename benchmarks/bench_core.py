"""Benchmarks of the Rust core through its Python bindings, beside Strawberry doing the same work.

Measured here:
- dispatch: one event to N subscribers on one channel, same selection, with no resolver and with
  an identity resolver shared by all (one call per event); the time of `publish_event`, which
  filters, resolves, projects, serializes and queues a ready-to-send frame per subscriber;
- drain: turning queued frames into the text given to the WebSocket, per frame;
- registration rate for a repeated query, and resident memory per registered subscription;
- Strawberry (`strawberry_peer.py`): N subscriptions from `schema.subscribe()` fed by one
  in-process broadcast, timed from publish until every subscriber has its ExecutionResult (no
  transport on either side).

Run: `scripts/bench` (or `python benchmarks/bench_core.py --quick`). Writes
benchmarks/results/core.json and core.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraiseql_core_rs import PyEvent, PySubscriptionExecutor, __version__

RESULTS = Path(__file__).parent / "results"
QUERY = "subscription { ticks { id channel value } }"
DATA = {"id": "1", "channel": "bench", "value": 42, "ts": 1.5, "extra": "not selected"}
SUBS_PER_CONNECTION = 100


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def identity(event: PyEvent, variables: Any, context: Any) -> Any:
    return event.data


def build(n: int, resolver: Callable[..., Any] | None) -> PySubscriptionExecutor:
    executor = PySubscriptionExecutor(max_queue=10_000)
    for i in range(n):
        executor.register_subscription(
            f"c{i // SUBS_PER_CONNECTION}",
            f"s{i}",
            QUERY,
            channels=["bench"],
            resolver=resolver,
            resolver_scope="global",
        )
    return executor


def drain_all(executor: PySubscriptionExecutor, n: int) -> int:
    return sum(
        len(executor.drain(f"c{c}"))
        for c in range((n + SUBS_PER_CONNECTION - 1) // SUBS_PER_CONNECTION)
    )


def time_dispatch(n: int, resolver: Callable[..., Any] | None, repeats: int) -> dict[str, float]:
    executor = build(n, resolver)
    publish, drain = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        delivered = executor.publish_event("tick", "bench", DATA)
        t1 = time.perf_counter()
        drained = drain_all(executor, n)
        t2 = time.perf_counter()
        assert delivered == n == drained, (delivered, drained)
        publish.append(t1 - t0)
        drain.append((t2 - t1) / n)
    return {
        "median_us": statistics.median(publish) * 1e6,
        "min_us": min(publish) * 1e6,
        "max_us": max(publish) * 1e6,
        "per_subscriber_ns": statistics.median(publish) / n * 1e9,
        "drain_per_frame_ns": statistics.median(drain) * 1e9,
    }


def time_registration(n: int) -> dict[str, float]:
    gc.collect()
    before = rss_bytes()
    executor = PySubscriptionExecutor()
    t0 = time.perf_counter()
    for i in range(n):
        executor.register_subscription(f"c{i // SUBS_PER_CONNECTION}", f"s{i}", QUERY)
    elapsed = time.perf_counter() - t0
    gc.collect()
    after = rss_bytes()
    assert executor.get_metrics()["active_subscriptions"] == n
    return {"per_second": n / elapsed, "bytes_per_subscription": (after - before) / n}


def strawberry_dispatch(n: int, repeats: int) -> dict[str, float] | None:
    try:
        import strawberry_peer as peer
    except ImportError:  # strawberry-graphql not installed
        return None

    async def run() -> list[float]:
        streams: list[Any] = [await peer.schema.subscribe(QUERY) for _ in range(n)]
        times = []
        for _ in range(repeats):
            # Each generator must be waiting on its queue before the event is published.
            pending = [asyncio.ensure_future(s.__anext__()) for s in streams]
            while len(peer.subscribers) < n:
                await asyncio.sleep(0)
            await asyncio.sleep(0)
            t0 = time.perf_counter()
            peer.publish(DATA)
            results = await asyncio.gather(*pending)
            times.append(time.perf_counter() - t0)
            assert all(not r.errors and r.data["ticks"]["value"] == 42 for r in results)
        for s in streams:
            await s.aclose()
        return times

    times = asyncio.run(run())
    return {
        "median_us": statistics.median(times) * 1e6,
        "per_subscriber_ns": statistics.median(times) / n * 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [10, 100] if args.quick else [100, 10_000, 100_000]
    strawberry_sizes = [10] if args.quick else [100, 10_000]
    repeats = 3 if args.quick else 30
    reg_n = 1_000 if args.quick else 100_000

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": sys.version.split()[0],
        "fraiseql_core_rs": __version__,
        "dispatch": {},
        "dispatch_identity_resolver": {},
        "strawberry_dispatch": {},
    }
    # First, while the allocator holds no freed memory that would hide the growth.
    results["registration"] = time_registration(reg_n)
    for n in sizes:
        reps = max(3, repeats if n <= 10_000 else repeats // 3)
        results["dispatch"][n] = time_dispatch(n, None, reps)
        results["dispatch_identity_resolver"][n] = time_dispatch(n, identity, reps)
    try:
        from importlib.metadata import version

        results["strawberry"] = version("strawberry-graphql")
    except Exception:
        results["strawberry"] = None
    for n in strawberry_sizes:
        res = strawberry_dispatch(n, max(3, repeats // 3))
        if res is not None:
            results["strawberry_dispatch"][n] = res

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "core.json").write_text(json.dumps(results, indent=2) + "\n")
    md = render(results)
    (args.out / "core.md").write_text(md)
    print(md)


def render(r: dict[str, Any]) -> str:
    lines = [
        f"# Core benchmarks ({r['date']})",
        "",
        f"{r['machine']}; Python {r['python']}; fraiseql_core_rs {r['fraiseql_core_rs']};"
        f" strawberry-graphql {r['strawberry']}",
        "",
        "One event to N subscribers on one channel (same selection). fraiseql: `publish_event`"
        " (filter, resolve, project, serialize, queue a frame each); Strawberry: publish until"
        " every subscriber has its result.",
        "",
        "| subscribers | fraiseql, no resolver | fraiseql, identity resolver | Strawberry |"
        " drain per frame |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, d in r["dispatch"].items():
        ident = r["dispatch_identity_resolver"][n]
        sb = r["strawberry_dispatch"].get(n)
        sb_text = f"{sb['median_us']:,.0f} µs" if sb else "n/a"
        lines.append(
            f"| {int(n):,} | {d['median_us']:,.1f} µs ({d['per_subscriber_ns']:.0f} ns each) |"
            f" {ident['median_us']:,.1f} µs | {sb_text} | {d['drain_per_frame_ns']:.0f} ns |"
        )
    reg = r["registration"]
    lines += [
        "",
        f"Registration (repeated query): {reg['per_second']:,.0f} per second;"
        f" resident memory {reg['bytes_per_subscription']:,.0f} bytes per subscription.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
