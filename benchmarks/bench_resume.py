"""Resume latency per bus: how long a client that reconnects waits for the events it missed.

Each trial: a subscription with `extensions: {"resume": true}` receives one event and its
cursor, its connection closes, 100 events are published meanwhile, and a new connection
subscribes with `resumeFrom`. Timed from the new connection's start (TCP connect, handshake,
`connection_init`, `subscribe`) to the first replayed event and to the last (the 100th).
The server is the ticker example in another process, on the in-memory bus, Redis or
PostgreSQL; the events come from its own `POST /burst` (memory) or from an executor in this
process on the bus.

Run: `python benchmarks/bench_resume.py [--bus memory|redis|postgresql|all] [--trials 30]`.
Writes benchmarks/results/resume.json and resume.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from bench_bus import (
    BUSES,
    QUERY,
    RESULTS,
    config,
    percentile,
    start_ticker,
    wait_up,
    write_report,
)
from websockets.asyncio.client import ClientConnection, connect

from fraiseql_core_rs import PySubscriptionExecutor

MISSED = 100


async def subscribe(port: int, channel: str, extensions: dict[str, Any]) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init"}))
    await ws.recv()
    payload = {"query": QUERY, "variables": {"ch": channel}, "extensions": extensions}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def next_payload(ws: ClientConnection) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert message["type"] == "next", message
    payload: dict[str, Any] = message["payload"]
    return payload


async def trials(url: str, count: int) -> dict[str, Any]:
    server, port = start_ticker(url)
    publisher = None if url == "memory" else PySubscriptionExecutor(config(url))
    if publisher is not None:
        publisher.start_bus()
    first: list[float] = []
    last: list[float] = []
    try:
        await wait_up(port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def publish(channel: str, n: int) -> None:
                if publisher is None:
                    body = {"channel": channel, "count": n, "rate": 0}
                    (await http.post("/burst", json=body)).raise_for_status()
                    return
                for i in range(n):
                    data = {"id": str(i), "channel": channel, "value": i, "ts": time.time()}
                    publisher.publish_event("tick", channel, data)

            for _ in range(count):
                channel = f"resume-{uuid.uuid4().hex[:8]}"
                ws = await subscribe(port, channel, {"resume": True})
                await asyncio.sleep(0.2)  # the bus listens once the subscription is in
                await publish(channel, 1)
                cursor = (await next_payload(ws))["extensions"]["cursor"]
                await ws.close()
                await publish(channel, MISSED)
                await asyncio.sleep(0.2)  # on the bus, and in its history
                start = time.perf_counter()
                ws = await subscribe(port, channel, {"resumeFrom": cursor})
                await next_payload(ws)
                first.append((time.perf_counter() - start) * 1e3)
                for _ in range(MISSED - 1):
                    await next_payload(ws)
                last.append((time.perf_counter() - start) * 1e3)
                await ws.close()
    finally:
        if publisher is not None:
            publisher.stop_bus()
        server.terminate()
        server.wait(timeout=10)
    return {
        "trials": count,
        "missed": MISSED,
        "first_p50_ms": statistics.median(first),
        "first_p90_ms": percentile(first, 0.9),
        "last_p50_ms": statistics.median(last),
        "last_p90_ms": percentile(last, 0.9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", choices=["memory", *BUSES, "all"], default="all")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = ["memory", *BUSES] if args.bus == "all" else [args.bus]
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in names:
        results[name] = asyncio.run(trials(BUSES.get(name, "memory"), args.trials))
    lines = [
        f"# Resume latency ({results['date']})",
        "",
        f"A client reconnects and resumes after missing {MISSED} events: from the start of the "
        f"new connection to the first and to the last replayed event ({args.trials} trials).",
        "",
        "| bus | first p50 | first p90 | all p50 | all p90 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        r = results[name]
        lines.append(
            f"| {name} | {r['first_p50_ms']:.2f} ms | {r['first_p90_ms']:.2f} ms | "
            f"{r['last_p50_ms']:.2f} ms | {r['last_p90_ms']:.2f} ms |"
        )
    write_report(args.out, "resume", results, lines)


if __name__ == "__main__":
    main()
