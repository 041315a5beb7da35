"""The load clients with tiny numbers, against the ticker app and its Strawberry peer:
well-formed reports, and the checks catch what they should. `benchmarks/load_client.py` is the
Python one; `benchmarks/load-client/` the Rust one (graphql-transport-ws only), built here in
release mode, with the same flags and the same report."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from example_modules import ROOT, load_module
from helpers import running_server

from fraiseql_fastapi import EventBusConfig
from fraiseql_fastapi.http_abstraction import ProtocolOptions

LOAD_CLIENT = ROOT / "benchmarks" / "load_client.py"

REPORT_KEYS = {
    "ok",
    "connections",
    "subscriptions_per_connection",
    "events",
    "messages_expected",
    "messages_delivered",
    "seconds",
    "messages_per_second",
    "complete_subscriptions",
    "missing",
    "repeats",
    "timed_out",
    "subscribe_seconds",
    "connect_seconds",
    "live_seconds",
    "server_cpu_seconds",
    "server_cpu_us_per_message",
    "client_cpu_seconds",
    "server_rss_bytes",
    "rss_bytes_per_subscription",
    "rss_bytes_per_connection",
    "latency",
}
#: Every key of a report (`build_report`): both clients write exactly these.
ALL_REPORT_KEYS = REPORT_KEYS | {
    "url",
    "subscriptions",
    "rate",
    "refusals",
    "refusal_count",
    "closes",
    "subscriptions_per_second",
    "waited_for_stats",
    "trigger_status",
    "trigger_response",
    "server_pid",
    "rss_samples",
}
CLIENTS = ["python", "rust"]


def client_command(client: str, request: pytest.FixtureRequest) -> list[str]:
    """The command that starts the `client` load client ("python" or "rust")."""
    if client == "rust":
        return [str(request.getfixturevalue("rust_client"))]
    return [sys.executable, str(LOAD_CLIENT)]


async def run_load_client(
    address: str, *args: str, command: list[str] | None = None
) -> tuple[int, dict[str, Any]]:
    """Runs a load client (by default the Python one) as its own process; returns (exit
    status, report)."""
    process = await asyncio.create_subprocess_exec(
        *(command or [sys.executable, str(LOAD_CLIENT)]),
        f"--url=ws://{address}/graphql",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    except asyncio.TimeoutError:
        process.kill()
        raise
    assert stdout, stderr.decode()
    report: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    assert process.returncode is not None
    return process.returncode, report


@pytest.mark.anyio
@pytest.mark.parametrize(
    "make_app",
    [
        lambda: load_module("examples/ticker/app.py").create_app(EventBusConfig.memory()),
        lambda: load_module("benchmarks/strawberry_ticker.py").create_app(),
    ],
    ids=["fraiseql", "strawberry"],
)
@pytest.mark.parametrize("client", CLIENTS)
async def test_load_client_counts_every_message(
    make_app: Any, client: str, request: pytest.FixtureRequest
) -> None:
    query = "subscription ($ch: String!) { ticks(channel: $ch) { id value ts } }"
    command = client_command(client, request)
    async with running_server(make_app()) as address:
        status, report = await run_load_client(
            address,
            "--connections=3",
            "--subscriptions=2",
            "--events=20",
            f"--query={query}",
            f"--server-pid={os.getpid()}",
            "--timeout=30",
            command=command,
        )
    assert status == 0, report
    assert set(report) == ALL_REPORT_KEYS
    assert report["ok"] is True
    assert (report["connections"], report["subscriptions"], report["events"]) == (3, 6, 20)
    assert report["messages_expected"] == report["messages_delivered"] == 120
    assert report["complete_subscriptions"] == 6
    assert report["missing"] == report["repeats"] == 0
    assert report["seconds"] > 0
    assert report["messages_per_second"] > 0
    assert report["server_cpu_seconds"] >= 0
    assert report["subscribe_seconds"] > 0
    assert set(report["server_rss_bytes"]) >= {"after_connections", "after_subscriptions"}
    assert report["trigger_response"]["published"] == 20
    latency = report["latency"]
    assert latency["count"] == 120
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert [point[0] for point in latency["cdf_ms"]][:3] == [0, 1, 2]
    assert [point[0] for point in latency["cdf_ms"]][-3:] == [99.5, 99.9, 100]
    assert report["closes"] == report["refusals"] == []
    assert report["trigger_status"] == 200


@pytest.mark.anyio
@pytest.mark.parametrize("client", CLIENTS)
async def test_load_client_subscribes_without_events(
    client: str, request: pytest.FixtureRequest
) -> None:
    command = client_command(client, request)
    app = load_module("examples/ticker/app.py").create_app(EventBusConfig.memory())
    async with running_server(app) as address:
        status, report = await run_load_client(
            address,
            "--connections=2",
            "--subscriptions=5",
            "--events=0",
            "--timeout=30",
            "--connect-concurrency=1",
            f"--server-pid={os.getpid()}",
            command=command,
        )
    assert status == 0, report
    assert report["subscriptions"] == 10
    assert report["messages_delivered"] == 0
    assert report["waited_for_stats"] is True
    assert report["subscriptions_per_second"] > 0
    assert report["latency"] is None
    # Connected, then live: connect + subscribe (the RSS read between them aside).
    assert 0 < report["connect_seconds"] < report["live_seconds"]
    assert report["live_seconds"] >= report["subscribe_seconds"]
    rss = report["server_rss_bytes"]
    per_connection = (rss["after_subscriptions"] - rss["before_connections"]) / 2
    assert report["rss_bytes_per_connection"] == per_connection


@pytest.mark.anyio
@pytest.mark.parametrize("client", CLIENTS)
async def test_load_client_refuses_a_connect_concurrency_below_one(
    client: str, request: pytest.FixtureRequest
) -> None:
    process = await asyncio.create_subprocess_exec(
        *client_command(client, request),
        "--url=ws://127.0.0.1:9/graphql",
        "--connect-concurrency=0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode != 0
    assert "--connect-concurrency must be positive" in (stdout + stderr).decode()


def test_python_load_client_parses_connect_concurrency() -> None:
    parse_args = load_module("benchmarks/load_client.py").parse_args
    assert parse_args([]).connect_concurrency == 50
    assert parse_args(["--connect-concurrency=200"]).connect_concurrency == 200


@pytest.mark.anyio
@pytest.mark.parametrize("client", CLIENTS)
async def test_load_client_answers_pings(client: str, request: pytest.FixtureRequest) -> None:
    # The server pings every 0.1 s and closes a connection that has not answered in 0.3 s; the
    # burst takes about a second.
    command = client_command(client, request)
    options = ProtocolOptions(ping_interval=0.1, pong_timeout=0.3)
    app = load_module("examples/ticker/app.py").create_app(EventBusConfig.memory(), options)
    async with running_server(app) as address:
        status, report = await run_load_client(
            address, "--connections=2", "--events=10", "--rate=10", "--timeout=30", command=command
        )
    assert status == 0, report
    assert report["closes"] == []
    assert report["messages_delivered"] == 20


@pytest.mark.anyio
@pytest.mark.parametrize("client", CLIENTS)
async def test_load_client_reports_missing_messages(
    client: str, request: pytest.FixtureRequest
) -> None:
    command = client_command(client, request)
    app = load_module("examples/ticker/app.py").create_app(EventBusConfig.memory())
    short_burst = json.dumps({"channel": "load", "count": 5, "rate": 0})
    async with running_server(app) as address:
        status, report = await run_load_client(
            address,
            "--connections=2",
            "--events=8",
            f"--trigger-body={short_burst}",
            "--timeout=2",
            command=command,
        )
    assert status == 2
    assert report["ok"] is False
    assert report["timed_out"] is True
    assert report["messages_delivered"] == 10
    assert report["missing"] == 6
    assert report["complete_subscriptions"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize("client", CLIENTS)
async def test_load_client_reports_a_refused_subscription(
    client: str, request: pytest.FixtureRequest
) -> None:
    command = client_command(client, request)
    app = load_module("examples/ticker/app.py").create_app(EventBusConfig.memory())
    async with running_server(app) as address:
        status, report = await run_load_client(
            address,
            "--connections=1",
            "--events=1",
            "--query=subscription { nope }",
            command=command,
        )
    assert status == 1
    assert "refused" in report["error"]


@pytest.mark.anyio
async def test_rust_load_client_refuses_other_protocols(rust_client: Path) -> None:
    status, report = await run_load_client(
        "127.0.0.1:9", "--protocol=graphql-ws", command=[str(rust_client)]
    )
    assert status == 1
    assert report["ok"] is False
    assert "not supported" in report["error"]


def test_check_ids_finds_gaps_and_repeats() -> None:
    check_ids = load_module("benchmarks/load_client.py").check_ids
    assert check_ids([0, 1, 2], 3) == {"missing": 0, "repeats": 0, "received": 3}
    # 3 is skipped (missing), 1 comes twice and None is not an id (repeats), 4 never comes.
    assert check_ids([0, 2, 1, 1, None], 5) == {"missing": 3, "repeats": 3, "received": 5}
    assert check_ids([0, 1], 4) == {"missing": 2, "repeats": 0, "received": 2}
