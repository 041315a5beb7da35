"""The load client (benchmarks/load_client.py) with tiny numbers, against the ticker app and
its Strawberry peer, and the benchmark runner end to end: well-formed reports, and the checks
catch what they should."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from example_modules import ROOT, load_module
from helpers import running_server

from fraiseql_fastapi import EventBusConfig

LOAD_CLIENT = ROOT / "benchmarks" / "load_client.py"
RUNNER = ROOT / "benchmarks" / "run_ticker_load.py"

REPORT_KEYS = {
    "ok",
    "connections",
    "events",
    "messages_expected",
    "messages_delivered",
    "seconds",
    "messages_per_second",
    "complete_connections",
    "ordered_connections",
    "missing",
    "duplicates",
    "unexpected",
    "out_of_order",
    "timed_out",
    "server_cpu_seconds",
    "server_cpu_us_per_message",
    "client_cpu_seconds",
}


async def run_load_client(address: str, *args: str) -> tuple[int, dict[str, Any]]:
    """Runs the load client as its own process; returns (exit status, report)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(LOAD_CLIENT),
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
async def test_load_client_counts_every_message(make_app: Any) -> None:
    async with running_server(make_app()) as address:
        status, report = await run_load_client(
            address, "--connections=3", "--events=20", f"--server-pid={os.getpid()}", "--timeout=30"
        )
    assert status == 0, report
    assert set(report) >= REPORT_KEYS
    assert report["ok"] is True
    assert (report["connections"], report["events"]) == (3, 20)
    assert report["messages_expected"] == report["messages_delivered"] == 60
    assert report["complete_connections"] == report["ordered_connections"] == 3
    assert report["missing"] == report["duplicates"] == report["out_of_order"] == 0
    assert report["seconds"] > 0
    assert report["messages_per_second"] > 0
    assert report["server_cpu_seconds"] >= 0
    assert report["trigger_response"]["published"] == 20


@pytest.mark.anyio
async def test_load_client_reports_missing_messages() -> None:
    app = load_module("examples/ticker/app.py").create_app(EventBusConfig.memory())
    short_burst = json.dumps({"channel": "load", "count": 5, "rate": 0})
    async with running_server(app) as address:
        status, report = await run_load_client(
            address, "--connections=2", "--events=8", f"--trigger-body={short_burst}", "--timeout=2"
        )
    assert status == 2
    assert report["ok"] is False
    assert report["timed_out"] is True
    assert report["messages_delivered"] == 10
    assert report["missing"] == 6
    assert report["complete_connections"] == 0


@pytest.mark.anyio
async def test_load_client_reports_a_refused_subscription() -> None:
    app = load_module("examples/ticker/app.py").create_app(EventBusConfig.memory())
    async with running_server(app) as address:
        status, report = await run_load_client(
            address, "--connections=1", "--events=1", "--query=subscription { nope }"
        )
    assert status == 1
    assert "refused" in report["error"]


def test_check_ids_finds_gaps_duplicates_and_disorder() -> None:
    check_ids = load_module("benchmarks/load_client.py").check_ids
    assert check_ids(["0", "1", "2"], 3) == {
        "missing": 0,
        "duplicates": 0,
        "unexpected": 0,
        "out_of_order": 0,
    }
    assert check_ids(["0", "2", "1", "1", "9", None], 4) == {
        "missing": 1,
        "duplicates": 1,
        "unexpected": 2,
        "out_of_order": 2,
    }


def test_benchmark_runner_writes_both_results(tmp_path: Path) -> None:
    tiny = ["--connections=2", "--events=10", "--runs=1", "--timeout=30", f"--out={tmp_path}"]
    subprocess.run(
        [sys.executable, str(RUNNER), *tiny],
        check=True,
        capture_output=True,
        timeout=180,
    )
    results = json.loads((tmp_path / "ticker_load.json").read_text())
    assert set(results["summary"]) == {"fraiseql-fastapi", "strawberry"}
    for summary in results["summary"].values():
        assert summary["all_runs_ok"] is True
        assert summary["messages_delivered"] == 20
        assert summary["messages_per_second"] > 0
    markdown = (tmp_path / "ticker_load.md").read_text()
    assert markdown.startswith("# Ticker load")
    assert "| fraiseql-fastapi |" in markdown
    assert "| strawberry |" in markdown
