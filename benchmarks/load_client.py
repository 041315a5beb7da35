"""A graphql-transport-ws load client: C connections subscribe, one burst of N events is
triggered, and every `next` is counted, checked and timed.

    python benchmarks/load_client.py --url ws://127.0.0.1:8000/graphql \
        --connections 100 --events 1000 [--server-pid PID] [--timeout 120]

Each connection sends `connection_init`, waits for the ack and subscribes (by default to
`ticks(channel: $ch) { id value }`). The client then waits until the server reports every
subscription in `GET /stats` (`subscribers`; when the server has no such endpoint it goes on
after the acks and a short pause), posts the trigger (by default `POST /burst` with
`{"channel", "count": N, "rate": 0}`), and counts every `next` per connection. It checks that
each connection received ids "0".."N-1" in order, with none missing and none duplicated.

It prints one JSON object: connections, events, messages expected and delivered, seconds from
the trigger to the last message, messages per second, the checks, and, given the server's PID,
the server's CPU seconds (user + system, from /proc/PID/stat) per delivered message. The exit
status is 0 when every check passed, 2 when one failed, 1 on an error (then the JSON has
`error`). Everything is bounded by `--timeout`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect

DEFAULT_QUERY = "subscription ($ch: String!) { ticks(channel: $ch) { id value } }"
SUBPROTOCOL = "graphql-transport-ws"
#: How long to keep listening once every connection is complete, to catch duplicates.
SETTLE_SECONDS = 0.2
#: At most this many handshakes in flight at once.
CONNECT_CONCURRENCY = 50


@dataclass(frozen=True)
class LoadConfig:
    """What to run; see the command line options."""

    url: str
    connections: int = 100
    events: int = 1000
    channel: str = "load"
    query: str = DEFAULT_QUERY
    variables: dict[str, Any] | None = None
    stats_url: str | None = None
    trigger_url: str | None = None
    trigger_body: dict[str, Any] | None = None
    server_pid: int | None = None
    timeout: float = 120.0

    def http_url(self, path: str) -> str:
        """`path` on the server of the WebSocket URL (ws -> http, wss -> https)."""
        parts = urlsplit(self.url)
        scheme = "https" if parts.scheme == "wss" else "http"
        return urlunsplit((scheme, parts.netloc, path, "", ""))

    @property
    def subscribe_variables(self) -> dict[str, Any]:
        """The subscription's variables (default: `{"ch": channel}`)."""
        return {"ch": self.channel} if self.variables is None else self.variables

    @property
    def trigger(self) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body POSTed to start the events."""
        body = self.trigger_body or {"channel": self.channel, "count": self.events, "rate": 0}
        return self.trigger_url or self.http_url("/burst"), body


@dataclass
class Tally:
    """What one connection received."""

    expected: int
    ids: list[str | None] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)
    completed_at: float | None = None
    last_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def record_next(self, payload: Any, now: float) -> None:
        """Counts one `next`; the connection is done once it has `expected` of them."""
        self.ids.append(event_id(payload))
        self.last_at = now
        if len(self.ids) == self.expected:
            self.completed_at = now
            self.done.set()

    def record_other(self, message: dict[str, Any]) -> None:
        """An `error` or `complete`: the subscription is over."""
        self.other.append(message)
        self.done.set()


def event_id(payload: Any) -> str | None:
    """The `id` of the root field's value in a `next` payload, as a string."""
    data = payload.get("data") if isinstance(payload, dict) else None
    root = next(iter(data.values()), None) if isinstance(data, dict) and data else None
    if isinstance(root, dict) and root.get("id") is not None:
        return str(root["id"])
    return None


def check_ids(ids: Sequence[str | None], expected: int) -> dict[str, int]:
    """Missing, duplicated, unexpected and out-of-order ids against "0".."expected-1"."""
    wanted = {str(i) for i in range(expected)}
    seen: set[str | None] = set()
    duplicates = out_of_order = 0
    previous = -1
    for value in ids:
        duplicates += value in seen
        seen.add(value)
        number = int(value) if value is not None and value.isdigit() else None
        if number is not None:
            out_of_order += number < previous
            previous = max(previous, number)
    return {
        "missing": len(wanted - seen),
        "duplicates": duplicates,
        "unexpected": len(seen - wanted),
        "out_of_order": out_of_order,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" of the command name: state is field 3, so utime (14) and stime (15) of
    # proc(5) are at indexes 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def receive(ws: ClientConnection, tally: Tally) -> None:
    """Counts the connection's messages until it closes; answers server pings."""
    async for text in ws:
        message = json.loads(text)
        kind = message.get("type")
        if kind == "next":
            tally.record_next(message.get("payload"), time.perf_counter())
        elif kind == "ping":
            await ws.send('{"type":"pong"}')
        elif kind in ("error", "complete"):
            tally.record_other(message)


async def open_subscriber(
    config: LoadConfig, gate: asyncio.Semaphore, stack: contextlib.AsyncExitStack
) -> tuple[ClientConnection, Tally]:
    """Connects, initialises and subscribes one connection; returns it with its tally."""
    async with gate:
        ws = await stack.enter_async_context(
            connect(
                config.url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                compression=None,
                open_timeout=30,
                close_timeout=2,
                ping_interval=None,
                max_size=2**24,
            )
        )
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await ws.recv())
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"expected connection_ack, got {ack}")
        payload = {"query": config.query, "variables": config.subscribe_variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws, Tally(config.events)


async def open_subscribers(
    config: LoadConfig, stack: contextlib.AsyncExitStack
) -> list[tuple[ClientConnection, Tally]]:
    """Opens every connection, a bounded number of handshakes at a time."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    return await asyncio.gather(
        *(open_subscriber(config, gate, stack) for _ in range(config.connections))
    )


async def subscriber_count(http: httpx.AsyncClient, stats_url: str) -> int | None:
    """The server's `subscribers` gauge, or None when it does not report one."""
    try:
        response = await http.get(stats_url)
        value = response.json().get("subscribers") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


async def wait_until_subscribed(
    http: httpx.AsyncClient,
    stats_url: str,
    target: int,
    tallies: Sequence[Tally],
    deadline: float,
) -> bool:
    """Polls `subscribers` until it reaches `target`; False when the server has no stats.
    Raises if a subscription was refused (its `error` is in its tally)."""
    while time.monotonic() < deadline:
        refused = next((tally.other[0] for tally in tallies if tally.other), None)
        if refused is not None:
            raise RuntimeError(f"a subscription was refused: {refused}")
        count = await subscriber_count(http, stats_url)
        if count is None:
            await asyncio.sleep(0.5)  # no stats: give the subscribes a moment to land
            return False
        if count >= target:
            return True
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the server did not report {target} subscribers in time")


async def run_load(config: LoadConfig) -> dict[str, Any]:
    """Runs one load test; returns the report (see the module docstring)."""
    deadline = time.monotonic() + config.timeout
    stats_url = config.stats_url or config.http_url("/stats")
    trigger_url, trigger_body = config.trigger
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=config.timeout))
        baseline = await subscriber_count(http, stats_url) or 0
        opened = await asyncio.wait_for(
            open_subscribers(config, stack), max(0.0, deadline - time.monotonic())
        )
        readers = [asyncio.create_task(receive(ws, tally)) for ws, tally in opened]
        tallies = [tally for _, tally in opened]
        stats_seen = await wait_until_subscribed(
            http, stats_url, baseline + config.connections, tallies, deadline
        )
        cpu_before = cpu_seconds(config.server_pid) if config.server_pid else None
        client_cpu_before = time.process_time()
        started = time.perf_counter()
        trigger = asyncio.create_task(http.post(trigger_url, json=trigger_body))
        timed_out = not await wait_all(tallies, deadline)
        trigger_response = await finish(trigger, deadline)
        cpu_after = cpu_seconds(config.server_pid) if config.server_pid else None
        client_cpu = time.process_time() - client_cpu_before
        await asyncio.sleep(SETTLE_SECONDS)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return build_report(
        config,
        tallies,
        started=started,
        timed_out=timed_out,
        stats_seen=stats_seen,
        trigger_response=trigger_response,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
    )


async def wait_all(tallies: Sequence[Tally], deadline: float) -> bool:
    """Waits until every connection is done; False if the deadline came first."""
    try:
        await asyncio.wait_for(
            asyncio.gather(*(tally.done.wait() for tally in tallies)),
            max(0.0, deadline - time.monotonic()),
        )
    except asyncio.TimeoutError:
        return False
    return True


async def finish(trigger: asyncio.Task[httpx.Response], deadline: float) -> httpx.Response | None:
    """The trigger's response, or None if it did not answer by the deadline (or failed)."""
    try:
        return await asyncio.wait_for(trigger, max(1.0, deadline - time.monotonic()))
    except (asyncio.TimeoutError, httpx.HTTPError):
        return None


def build_report(
    config: LoadConfig,
    tallies: Sequence[Tally],
    *,
    started: float,
    timed_out: bool,
    stats_seen: bool,
    trigger_response: httpx.Response | None,
    server_cpu: float | None,
    client_cpu: float,
) -> dict[str, Any]:
    """The JSON report of a run."""
    checks = [check_ids(tally.ids, config.events) for tally in tallies]
    totals = {key: sum(check[key] for check in checks) for key in checks[0]} if checks else {}
    delivered = sum(len(tally.ids) for tally in tallies)
    ends = [end for t in tallies if (end := t.completed_at or t.last_at) is not None]
    seconds = max(ends) - started if ends else None
    complete = sum(check["missing"] == 0 for check in checks)
    ordered = sum(check["out_of_order"] == 0 for check in checks)
    other = [message for tally in tallies for message in tally.other]
    ok = (
        not timed_out
        and not other
        and trigger_response is not None
        and trigger_response.is_success
        and complete == ordered == len(tallies)
        and totals.get("duplicates", 0) == totals.get("unexpected", 0) == 0
    )
    return {
        "ok": ok,
        "url": config.url,
        "connections": config.connections,
        "events": config.events,
        "messages_expected": config.connections * config.events,
        "messages_delivered": delivered,
        "seconds": seconds,
        "messages_per_second": delivered / seconds if seconds else None,
        "complete_connections": complete,
        "ordered_connections": ordered,
        **totals,
        "errors": other[:5],
        "error_count": len(other),
        "timed_out": timed_out,
        "waited_for_stats": stats_seen,
        "trigger_status": trigger_response.status_code if trigger_response else None,
        "trigger_response": _json_or_text(trigger_response) if trigger_response else None,
        "server_pid": config.server_pid,
        "server_cpu_seconds": server_cpu,
        "server_cpu_us_per_message": (
            server_cpu / delivered * 1e6 if server_cpu is not None and delivered else None
        ),
        "client_cpu_seconds": client_cpu,
    }


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def parse_args(argv: Sequence[str] | None = None) -> LoadConfig:
    """The command line as a `LoadConfig`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/graphql")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--channel", default="load")
    parser.add_argument("--query", default=DEFAULT_QUERY)
    parser.add_argument("--variables", type=json.loads, help='JSON (default: {"ch": CHANNEL})')
    parser.add_argument("--stats-url", help="default: /stats on the server of --url")
    parser.add_argument("--trigger-url", help="default: /burst on the server of --url")
    parser.add_argument("--trigger-body", type=json.loads, help="JSON POSTed to the trigger")
    parser.add_argument("--server-pid", type=int, help="to measure the server's CPU time")
    parser.add_argument("--timeout", type=float, default=120.0, help="hard limit, seconds")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.events < 1 or args.timeout <= 0:
        parser.error("--connections, --events and --timeout must be positive")
    return LoadConfig(
        url=args.url,
        connections=args.connections,
        events=args.events,
        channel=args.channel,
        query=args.query,
        variables=args.variables,
        stats_url=args.stats_url,
        trigger_url=args.trigger_url,
        trigger_body=args.trigger_body,
        server_pid=args.server_pid,
        timeout=args.timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the load test, prints the JSON report; returns the exit status."""
    config = parse_args(argv)
    try:
        # The inner deadlines bound each phase; this bounds the whole, closing included.
        report = asyncio.run(asyncio.wait_for(run_load(config), config.timeout + 15))
    except Exception as error:
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(report))
    return 0 if report["ok"] else 2


if __name__ == "__main__":
    sys.exit(main())
