"""Bus benchmarks: latency from a publish in one process to receipt by a WebSocket client of
another process at a steady rate, and how many events per second one process takes in from a
bus and dispatches.

Run: `python benchmarks/bench_bus.py [--bus redis|postgresql|all] [--rate 1000] [--seconds 5]`.
Writes benchmarks/results/bus.json and bus.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from websockets.asyncio.client import connect

from fraiseql_core_rs import PyEventBusConfig, PySubscriptionExecutor

ROOT = Path(__file__).parent.parent
RESULTS = Path(__file__).parent / "results"
QUERY = "subscription ($ch: String!) { ticks(channel: $ch) { id ts } }"
BUSES = {
    "redis": "redis://127.0.0.1:6379/0",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
}


def config(url: str) -> PyEventBusConfig:
    if url.startswith("redis"):
        return PyEventBusConfig.redis(url)
    return PyEventBusConfig.postgresql(url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_ticker(url: str) -> tuple[subprocess.Popen[bytes], int]:
    """The ticker example in a process of its own on `url`'s bus ("memory": in-memory)."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples/ticker/app.py"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "FRAISEQL_EVENT_BUS": url},
    )
    return server, port


async def wait_up(port: int) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                await http.get(f"http://127.0.0.1:{port}/stats")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"the ticker on port {port} did not start")


async def latency(url: str, rate: int, seconds: float, via_sql: bool = False) -> dict[str, Any]:
    """Publisher: this process (its own executor, a thread pacing the rate; with `via_sql`, a
    committed transaction calling `fraiseql_publish()` per event). Subscriber: the ticker
    example in another process, read by a WebSocket client here."""
    server, port = start_ticker(url)
    channel = f"lat-{uuid.uuid4().hex[:8]}"
    publisher = PySubscriptionExecutor(config(url))
    publisher.start_bus()
    count = int(rate * seconds)
    try:
        await wait_up(port)
        async with connect(
            f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"]
        ) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init"}))
            await ws.recv()
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {
                            "query": QUERY,
                            "variables": {"ch": channel},
                        },
                    }
                )
            )
            await asyncio.sleep(0.5)

            def publish() -> None:
                sql = psycopg.connect(url, autocommit=True) if via_sql else None
                start = time.perf_counter()
                for n in range(count):
                    target = start + n / rate
                    delay = target - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    data = {"id": str(n), "channel": channel, "value": n, "ts": time.time()}
                    if sql is None:
                        publisher.publish_event("tick", channel, data)
                    else:  # each statement is its own committed transaction
                        sql.execute(
                            "SELECT fraiseql_publish(%s, 'tick', %s::jsonb)",
                            (channel, json.dumps(data)),
                        )
                if sql is not None:
                    sql.close()

            thread = threading.Thread(target=publish)
            thread.start()
            latencies = []
            deadline = time.monotonic() + seconds + 30
            while len(latencies) < count and time.monotonic() < deadline:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                latencies.append((time.time() - message["payload"]["data"]["ticks"]["ts"]) * 1e3)
            thread.join()
    finally:
        publisher.stop_bus()
        server.terminate()
        server.wait(timeout=10)
    return {
        "events": count,
        "received": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
    }


def ingest(url: str, events: int) -> dict[str, Any]:
    """Events per second through the bus into one process: published (by another executor)
    as fast as it can, received, dispatched to one subscriber and drained."""
    channel = f"in-{uuid.uuid4().hex[:8]}"
    receiver = PySubscriptionExecutor(config(url), max_queue=events + 10)
    sender = PySubscriptionExecutor(config(url))
    receiver.start_bus()
    sender.start_bus()
    try:
        receiver.register_subscription(
            "c", "s", "subscription { ticks { id } }", channels=[channel]
        )
        time.sleep(0.5)
        start = time.perf_counter()
        for n in range(events):  # queued for the bus; sent by its own threads
            while True:
                try:
                    sender.publish_event("tick", channel, {"id": str(n)})
                    break
                except ConnectionError:  # publish queue full: let it drain
                    time.sleep(0.001)
        fd = receiver.bus_fd
        assert fd is not None
        got = 0
        deadline = time.monotonic() + 120
        while got < events and time.monotonic() < deadline:
            select.select([fd], [], [], 0.1)
            got += receiver.process_bus_events()
            receiver.drain("c")
        # From the first publish to the last dispatch: the whole pipeline, bus included.
        elapsed = time.perf_counter() - start
    finally:
        receiver.stop_bus()
        sender.stop_bus()
    return {
        "events": events,
        "dispatched": got,
        "seconds": elapsed,
        "events_per_second": got / elapsed if elapsed else 0.0,
    }


def write_report(out: Path, stem: str, results: dict[str, Any], lines: list[str]) -> None:
    """Writes `results` as `out/STEM.json` and the table `lines` as `out/STEM.md`, and prints
    the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", choices=[*BUSES, "all"], default="all")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--ingest", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = list(BUSES) if args.bus == "all" else [args.bus]
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in names:
        results[name] = {
            "latency": asyncio.run(latency(BUSES[name], args.rate, args.seconds)),
            "ingest": ingest(BUSES[name], args.ingest),
        }
    if "postgresql" in names:
        url = BUSES["postgresql"]
        results["postgresql-sql"] = {
            "latency": asyncio.run(latency(url, args.rate, args.seconds, via_sql=True)),
        }
    lines = [
        f"# Bus benchmarks ({results['date']})",
        "",
        f"Latency: publish in one process -> WebSocket client of another, {args.rate} "
        f"events/s for {args.seconds:g} s. Ingest: events/s one process takes in and "
        "dispatches.",
        "",
        "| bus | p50 | p99 | max | received | ingest events/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in [n for n in (*names, "postgresql-sql") if n in results]:
        lat, ing = results[name]["latency"], results[name].get("ingest")
        ingest_text = f"{ing['events_per_second']:,.0f}" if ing else "n/a"
        lines.append(
            f"| {name} | {lat['p50_ms']:.2f} ms | {lat['p99_ms']:.2f} ms | "
            f"{lat['max_ms']:.2f} ms | {lat['received']}/{lat['events']} | "
            f"{ingest_text} |"
        )
    write_report(args.out, "bus", results, lines)


if __name__ == "__main__":
    main()
