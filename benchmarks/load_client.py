"""A GraphQL subscriptions load client: C connections open S subscriptions each, one burst of N
events is triggered, and every `next` is counted, checked and timed.

    python benchmarks/load_client.py --url ws://127.0.0.1:8000/graphql \
        --connections 100 [--subscriptions 1] --events 1000 [--rate 0] \
        [--protocol graphql-transport-ws] [--server-pid PID] [--timeout 120] \
        [--connect-concurrency 50]

`--protocol` is graphql-transport-ws (the default), the legacy graphql-ws (`start`/`data`), or
sse (GraphQL over SSE in distinct connections mode: one streamed POST per subscription, on the
http(s) URL of the same path, each counted as one connection).

Each connection sends `connection_init` and waits for the ack (at most `--connect-concurrency`
handshakes in flight at once; `connect_seconds` runs from the first attempt until every ack
came); then every connection sends its S `subscribe` messages (ids "1".."S", by default
`ticks(channel: $ch) { id value }`) without waiting, and the client polls `GET /stats` until
the server reports them all (`subscribers`; the time this takes is `subscribe_seconds`; from
the first connection attempt, `live_seconds`). It then posts the trigger (by default
`POST /burst` with `{"channel", "count": N, "rate": R}`; R = 0 is as fast as the server goes)
and counts every `next` per subscription, checking that each received ids "0".."N-1" in order,
none missing and none repeated. `--events 0` only subscribes (the idle-memory scenario).

When the selection has `ts` (the publish time, `time.time()` in the server), the latency from
publish to receipt of every message is measured. Given the server's PID, the report has the
server's CPU seconds (user + system, /proc/PID/stat) per delivered message and its resident
memory (VmRSS, /proc/PID/status) before the connections, after them, after the subscriptions,
and sampled every `--sample-every` seconds during the burst; per subscription (the growth from
after the connections to after the subscriptions) and per connection (from before the
connections to after the subscriptions: a connection with its subscriptions).

It prints one JSON object (see `build_report`). The exit status is 0 when every check passed,
2 when one failed, 1 on an error (then the JSON has `error`). Everything is bounded by
`--timeout`. The WebSocket side is picows (callbacks, no task per message) and frames are
parsed with orjson, so that one client process can take far more messages per second than a
Python server sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

DEFAULT_QUERY = "subscription ($ch: String!) { ticks(channel: $ch) { id value } }"
PROTOCOLS = ("graphql-transport-ws", "graphql-ws", "sse")
#: How long to keep listening once every subscription is complete, to catch repeats.
SETTLE_SECONDS = 0.2
#: At most this many handshakes in flight at once, unless told otherwise.
CONNECT_CONCURRENCY = 50
#: Percentiles kept of the latency distribution (for the plots).
CDF_POINTS = [*range(0, 100), 99.5, 99.9, 100]


@dataclass(frozen=True)
class LoadConfig:
    """What to run; see the command line options."""

    url: str
    connections: int = 100
    subscriptions: int = 1
    events: int = 1000
    rate: float = 0.0
    channel: str = "load"
    query: str = DEFAULT_QUERY
    variables: dict[str, Any] | None = None
    stats_url: str | None = None
    trigger_url: str | None = None
    trigger_body: dict[str, Any] | None = None
    server_pid: int | None = None
    sample_every: float = 0.25
    timeout: float = 120.0
    protocol: str = "graphql-transport-ws"
    connect_concurrency: int = CONNECT_CONCURRENCY

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
        body = self.trigger_body or {
            "channel": self.channel,
            "count": self.events,
            "rate": self.rate,
        }
        return self.trigger_url or self.http_url("/burst"), body

    @property
    def total_subscriptions(self) -> int:
        return self.connections * self.subscriptions


class Run:
    """What every connection shares: counters, latencies, and the "all done" signal."""

    def __init__(self, expected_subscriptions: int) -> None:
        self.received = 0
        self.pending = expected_subscriptions
        self.all_done = asyncio.Event()
        self.latencies = array("d")
        self.refusals: list[dict[str, Any]] = []
        self.closes: list[tuple[int | None, str]] = []

    def subscription_done(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.all_done.set()


class Tally:
    """What one subscription received, checked against ids 0..expected-1 as they come."""

    __slots__ = ("expected", "gaps", "last_at", "next_id", "received", "repeats")

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.next_id = 0
        self.gaps = 0  # ids skipped over (missing unless they come later, then also repeats)
        self.repeats = 0  # ids at or below one already seen: duplicates or out of order
        self.last_at: float | None = None

    def record(self, value_id: int | None, now: float) -> bool:
        """Counts one `next`; True when this completes the subscription."""
        self.received += 1
        self.last_at = now
        if value_id == self.next_id:
            self.next_id += 1
        elif value_id is None or value_id < self.next_id:
            self.repeats += 1
        else:
            self.gaps += value_id - self.next_id
            self.next_id = value_id + 1
        return self.received == self.expected

    @property
    def missing(self) -> int:
        return self.gaps + max(0, self.expected - self.next_id)

    @property
    def ok(self) -> bool:
        return self.received == self.expected and self.missing == 0 and self.repeats == 0


def check_ids(ids: Sequence[int | None], expected: int) -> dict[str, int]:
    """Missing and repeated ids of a sequence against 0..expected-1 (what a `Tally` finds)."""
    tally = Tally(expected)
    for value in ids:
        tally.record(value, 0.0)
    return {"missing": tally.missing, "repeats": tally.repeats, "received": tally.received}


def root_value(payload: Any) -> Any:
    """The root field's value in a `next` payload."""
    data = payload.get("data") if isinstance(payload, dict) else None
    return next(iter(data.values()), None) if isinstance(data, dict) and data else None


def as_int(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def record_next(run: Run, tally: Tally, payload: Any) -> None:
    """Counts one `next` payload of a subscription, with its latency when it carries `ts`."""
    now = time.time()
    run.received += 1
    root = root_value(payload)
    if isinstance(root, dict):
        value_id = as_int(root.get("id"))
        ts = root.get("ts")
        if isinstance(ts, float):
            run.latencies.append(now - ts)
    else:
        value_id = None
    if tally.record(value_id, now):
        run.subscription_done()


class Connection(WSListener):  # type: ignore[misc]
    """One graphql-transport-ws WebSocket: its handshake, its subscriptions' tallies, and what
    else it was sent."""

    subprotocol = "graphql-transport-ws"
    subscribe_type = "subscribe"
    next_type = "next"

    def __init__(self, run: Run, config: LoadConfig) -> None:
        super().__init__()
        self.run = run
        self.tallies = {str(i + 1): Tally(config.events) for i in range(config.subscriptions)}
        self.acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.send({"type": "connection_init", "payload": {}})

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None:
            self.transport.send(WSMsgType.TEXT, orjson.dumps(message))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.run.closes.append((frame.get_close_code(), frame.get_close_message() or ""))
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        message = orjson.loads(frame.get_payload_as_bytes())
        kind = message.get("type")
        if kind == self.next_type:
            self.on_next(message)
        elif kind == "ping":
            self.send({"type": "pong"})
        elif kind == "connection_ack":
            if not self.acknowledged.done():
                self.acknowledged.set_result(None)
        elif kind in ("error", "complete"):
            self.run.refusals.append(message)
            self.run.all_done.set()  # a subscription ended early: no point waiting

    def on_next(self, message: dict[str, Any]) -> None:
        tally = self.tallies.get(message.get("id", ""))
        if tally is not None:
            record_next(self.run, tally, message.get("payload"))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.acknowledged.done():
            self.acknowledged.set_exception(ConnectionError("closed before connection_ack"))
        self.run.all_done.set()

    def subscribe_all(self, config: LoadConfig) -> None:
        payload = {"query": config.query, "variables": config.subscribe_variables}
        for op_id in self.tallies:
            self.send({"id": op_id, "type": self.subscribe_type, "payload": payload})

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close()
            self.transport.disconnect()


class LegacyConnection(Connection):
    """The same over the legacy graphql-ws protocol (subscriptions-transport-ws): `start` and
    `data` messages; `ka` keep-alives are ignored."""

    subprotocol = "graphql-ws"
    subscribe_type = "start"
    next_type = "data"


class SseConnection:
    """GraphQL over SSE, distinct connections mode: one streamed POST per subscription."""

    def __init__(self, run: Run, config: LoadConfig, http: httpx.AsyncClient) -> None:
        self.run = run
        self.http = http
        self.url = config.http_url(urlsplit(config.url).path)
        self.tallies = {str(i + 1): Tally(config.events) for i in range(config.subscriptions)}
        self.tasks: list[asyncio.Task[None]] = []

    def subscribe_all(self, config: LoadConfig) -> None:
        payload = {"query": config.query, "variables": config.subscribe_variables}
        for op_id in self.tallies:
            self.tasks.append(asyncio.create_task(self.stream(op_id, payload)))

    async def stream(self, op_id: str, payload: dict[str, Any]) -> None:
        headers = {"accept": "text/event-stream"}
        try:
            async with self.http.stream("POST", self.url, json=payload, headers=headers) as reply:
                if reply.status_code != 200:
                    self.run.refusals.append({"status": reply.status_code})
                    self.run.all_done.set()
                    return
                buffer = b""
                async for chunk in reply.aiter_raw():
                    buffer += chunk
                    *records, buffer = buffer.split(b"\n\n")
                    for record in records:
                        self.on_record(op_id, record)
        except httpx.HTTPError as error:
            self.run.closes.append((None, str(error)))
            self.run.all_done.set()

    def on_record(self, op_id: str, record: bytes) -> None:
        event = data = None
        for line in record.split(b"\n"):
            if line.startswith(b"event:"):
                event = line[6:].strip()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if event == b"next" and data:
            record_next(self.run, self.tallies[op_id], orjson.loads(data))
        elif event == b"complete" and not self.tallies[op_id].ok:
            self.run.refusals.append({"id": op_id, "type": "complete"})
            self.run.all_done.set()

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" of the command name: state is field 3, so utime (14) and stime (15) of
    # proc(5) are at indexes 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def open_connection(
    config: LoadConfig, run: Run, gate: asyncio.Semaphore, http: httpx.AsyncClient
) -> Connection | SseConnection:
    """Connects and initialises one connection."""
    if config.protocol == "sse":
        return SseConnection(run, config, http)
    kind = LegacyConnection if config.protocol == "graphql-ws" else Connection
    async with gate:
        _, connection = await ws_connect(
            lambda: kind(run, config),
            config.url,
            extra_headers={"Sec-WebSocket-Protocol": kind.subprotocol},
            websocket_handshake_timeout=30,
            max_frame_size=2**24,
        )
        await asyncio.wait_for(connection.acknowledged, 30)
    assert isinstance(connection, Connection)
    return connection


async def subscriber_count(http: httpx.AsyncClient, stats_url: str) -> int | None:
    """The server's `subscribers` gauge, or None when it does not report one."""
    try:
        response = await http.get(stats_url)
        value = response.json().get("subscribers") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


async def wait_until_subscribed(
    http: httpx.AsyncClient, stats_url: str, target: int, run: Run, deadline: float
) -> bool:
    """Polls `subscribers` until it reaches `target`; False when the server has no stats.
    Raises if a subscription was refused."""
    while time.monotonic() < deadline:
        if run.refusals:
            raise RuntimeError(f"a subscription was refused: {run.refusals[0]}")
        count = await subscriber_count(http, stats_url)
        if count is None:
            await asyncio.sleep(0.5)  # no stats: give the subscribes a moment to land
            return False
        if count >= target:
            return True
        await asyncio.sleep(0.005)
    raise TimeoutError(f"the server did not report {target} subscribers in time")


async def sample_rss(pid: int, run: Run, started: float, every: float, out: list[Any]) -> None:
    """Appends [seconds since `started`, messages received, server RSS] every `every` s."""
    while True:
        out.append([time.perf_counter() - started, run.received, rss_bytes(pid)])
        await asyncio.sleep(every)


@dataclass
class Measures:
    """What `run_load` measured besides the tallies."""

    rss: dict[str, int] = field(default_factory=dict)
    rss_samples: list[Any] = field(default_factory=list)
    subscribe_seconds: float | None = None
    connect_seconds: float | None = None
    live_seconds: float | None = None
    stats_seen: bool = False
    started: float = 0.0
    timed_out: bool = False
    trigger_response: httpx.Response | None = None
    server_cpu: float | None = None
    client_cpu: float = 0.0


async def run_load(config: LoadConfig) -> dict[str, Any]:
    """Runs one load test; returns the report (see `build_report`)."""
    deadline = time.monotonic() + config.timeout
    stats_url = config.stats_url or config.http_url("/stats")
    pid = config.server_pid
    run = Run(config.total_subscriptions)
    measures = Measures()
    connections: list[Connection | SseConnection] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=config.timeout, limits=limits) as http:
        baseline = await subscriber_count(http, stats_url) or 0
        if pid:
            measures.rss["before_connections"] = rss_bytes(pid)
        try:
            gate = asyncio.Semaphore(config.connect_concurrency)
            opening = [open_connection(config, run, gate, http) for _ in range(config.connections)]
            connecting = time.perf_counter()
            connections = await asyncio.wait_for(
                asyncio.gather(*opening), max(0.0, deadline - time.monotonic())
            )
            measures.connect_seconds = time.perf_counter() - connecting
            if pid:
                measures.rss["after_connections"] = rss_bytes(pid)
            subscribing = time.perf_counter()
            for connection in connections:
                connection.subscribe_all(config)
            measures.stats_seen = await wait_until_subscribed(
                http, stats_url, baseline + config.total_subscriptions, run, deadline
            )
            measures.subscribe_seconds = time.perf_counter() - subscribing
            if measures.stats_seen:
                measures.live_seconds = time.perf_counter() - connecting
            if pid:
                measures.rss["after_subscriptions"] = rss_bytes(pid)
            if config.events:
                await burst(config, http, run, measures, deadline)
        finally:
            for connection in connections:
                connection.close()
    return build_report(config, connections, run, measures)


async def burst(
    config: LoadConfig, http: httpx.AsyncClient, run: Run, measures: Measures, deadline: float
) -> None:
    """Triggers the events and waits for every message (or the deadline)."""
    pid = config.server_pid
    trigger_url, trigger_body = config.trigger
    cpu_before = cpu_seconds(pid) if pid else None
    client_cpu_before = time.process_time()
    started = time.perf_counter()
    measures.started = time.time()
    sampler = (
        asyncio.create_task(
            sample_rss(pid, run, started, config.sample_every, measures.rss_samples)
        )
        if pid
        else None
    )
    trigger = asyncio.create_task(http.post(trigger_url, json=trigger_body))
    try:
        await asyncio.wait_for(run.all_done.wait(), max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        measures.timed_out = True
    if cpu_before is not None and pid:
        measures.server_cpu = cpu_seconds(pid) - cpu_before
    measures.client_cpu = time.process_time() - client_cpu_before
    measures.trigger_response = await finish(trigger, deadline)
    await asyncio.sleep(SETTLE_SECONDS)
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        measures.rss["after_burst"] = rss_bytes(pid) if pid else 0


async def finish(trigger: asyncio.Task[httpx.Response], deadline: float) -> httpx.Response | None:
    """The trigger's response, or None if it did not answer by the deadline (or failed)."""
    try:
        return await asyncio.wait_for(trigger, max(1.0, deadline - time.monotonic()))
    except (asyncio.TimeoutError, httpx.HTTPError):
        return None


def latency_summary(latencies: array[float]) -> dict[str, Any] | None:
    """p50, p99, max and the distribution (milliseconds) of publish-to-receipt latencies."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    last = len(ordered) - 1

    def at(percent: float) -> float:
        return ordered[round(percent / 100 * last)] * 1000

    return {
        "count": len(ordered),
        "p50_ms": at(50),
        "p90_ms": at(90),
        "p99_ms": at(99),
        "p999_ms": at(99.9),
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
        "cdf_ms": [[percent, at(percent)] for percent in CDF_POINTS],
    }


def build_report(
    config: LoadConfig,
    connections: Sequence[Connection | SseConnection],
    run: Run,
    measures: Measures,
) -> dict[str, Any]:
    """The JSON report of a run."""
    tallies = [tally for connection in connections for tally in connection.tallies.values()]
    delivered = sum(tally.received for tally in tallies)
    missing = sum(tally.missing for tally in tallies)
    repeats = sum(tally.repeats for tally in tallies)
    complete = sum(tally.ok for tally in tallies)
    subscribed = len(tallies) == config.total_subscriptions
    trigger_ok = not config.events or (
        measures.trigger_response is not None and measures.trigger_response.is_success
    )
    ok = (
        subscribed
        and not measures.timed_out
        and not run.refusals
        and not run.closes
        and trigger_ok
        and (not config.events or complete == len(tallies))
    )
    ends = [t.last_at for t in tallies if t.last_at is not None]
    seconds = max(ends) - measures.started if config.events and ends else None
    server_cpu = measures.server_cpu
    rss = measures.rss
    per_subscription = (
        (rss["after_subscriptions"] - rss["after_connections"]) / config.total_subscriptions
        if "after_subscriptions" in rss and "after_connections" in rss
        else None
    )
    per_connection = (
        (rss["after_subscriptions"] - rss["before_connections"]) / config.connections
        if "after_subscriptions" in rss and "before_connections" in rss
        else None
    )
    trigger = measures.trigger_response
    return {
        "ok": ok,
        "url": config.url,
        "connections": config.connections,
        "subscriptions_per_connection": config.subscriptions,
        "subscriptions": config.total_subscriptions,
        "events": config.events,
        "rate": config.rate,
        "messages_expected": config.total_subscriptions * config.events,
        "messages_delivered": delivered,
        "seconds": seconds,
        "messages_per_second": delivered / seconds if seconds else None,
        "complete_subscriptions": complete,
        "missing": missing,
        "repeats": repeats,
        "refusals": run.refusals[:5],
        "refusal_count": len(run.refusals),
        "closes": run.closes[:5],
        "timed_out": measures.timed_out,
        "subscribe_seconds": measures.subscribe_seconds,
        "connect_seconds": measures.connect_seconds,
        "live_seconds": measures.live_seconds,
        "subscriptions_per_second": (
            config.total_subscriptions / measures.subscribe_seconds
            if measures.subscribe_seconds and measures.stats_seen
            else None
        ),
        "waited_for_stats": measures.stats_seen,
        "trigger_status": trigger.status_code if trigger is not None else None,
        "trigger_response": _json_or_text(trigger) if trigger is not None else None,
        "server_pid": config.server_pid,
        "server_cpu_seconds": server_cpu,
        "server_cpu_us_per_message": (
            server_cpu / delivered * 1e6 if server_cpu is not None and delivered else None
        ),
        "client_cpu_seconds": measures.client_cpu,
        "server_rss_bytes": rss,
        "rss_bytes_per_subscription": per_subscription,
        "rss_bytes_per_connection": per_connection,
        "rss_samples": measures.rss_samples,
        "latency": latency_summary(run.latencies),
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
    parser.add_argument("--subscriptions", type=int, default=1, help="per connection")
    parser.add_argument("--events", type=int, default=1000, help="0: subscribe only")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0: full speed")
    parser.add_argument("--channel", default="load")
    parser.add_argument("--query", default=DEFAULT_QUERY)
    parser.add_argument("--variables", type=json.loads, help='JSON (default: {"ch": CHANNEL})')
    parser.add_argument("--stats-url", help="default: /stats on the server of --url")
    parser.add_argument("--trigger-url", help="default: /burst on the server of --url")
    parser.add_argument("--trigger-body", type=json.loads, help="JSON POSTed to the trigger")
    parser.add_argument("--server-pid", type=int, help="to measure the server's CPU and memory")
    parser.add_argument("--sample-every", type=float, default=0.25, help="RSS sampling, seconds")
    parser.add_argument("--timeout", type=float, default=120.0, help="hard limit, seconds")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="graphql-transport-ws")
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=CONNECT_CONCURRENCY,
        help="at most this many handshakes (through their connection_ack) in flight at once",
    )
    args = parser.parse_args(argv)
    if min(args.connections, args.subscriptions) < 1 or args.events < 0 or args.timeout <= 0:
        parser.error("--connections, --subscriptions and --timeout must be positive")
    if args.connect_concurrency < 1:
        parser.error("--connect-concurrency must be positive")
    return LoadConfig(
        url=args.url,
        connections=args.connections,
        subscriptions=args.subscriptions,
        events=args.events,
        rate=args.rate,
        channel=args.channel,
        query=args.query,
        variables=args.variables,
        stats_url=args.stats_url,
        trigger_url=args.trigger_url,
        trigger_body=args.trigger_body,
        server_pid=args.server_pid,
        sample_every=args.sample_every,
        timeout=args.timeout,
        protocol=args.protocol,
        connect_concurrency=args.connect_concurrency,
    )


def raise_open_files_limit() -> None:
    """Raises the soft limit of open files to the hard one (every connection is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the load test, prints the JSON report; returns the exit status."""
    config = parse_args(argv)
    raise_open_files_limit()
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
