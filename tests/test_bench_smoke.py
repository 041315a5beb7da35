"""The benchmark code runs end to end on tiny sizes and writes well-formed results: the suite
(`benchmarks/suite.py --quick`: every scenario, every server, one run) and the pytest-benchmark
micro-benchmarks (run once each, untimed). No figure is asserted, only that they exist."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_suite_quick_run_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "suite.py"), "--quick", f"--out={tmp_path}"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    results = json.loads((tmp_path / "suite.json").read_text())
    scenarios = results["scenarios"]
    assert set(scenarios) == {
        "fanout_100x1000",
        "fanout_100x1000_positions",
        "fanout_1000x200",
        "protocols_100x1000",
        "one_connection_100_subscriptions",
        "steady_latency",
        "resolver",
        "memory_1k",
        "memory_10k",
        "memory_100k",
        "connections_1k",
        "connections_5k",
        "connections_15k",
        "rss_1m_messages",
    }
    assert set(scenarios["fanout_100x1000"]["servers"]) == {
        "fraiseql-fastapi",
        "fraiseql-fastapi (native)",
        "strawberry",
        "floor",
    }
    assert set(scenarios["protocols_100x1000"]["servers"]) == {
        "fraiseql-fastapi",
        "fraiseql-fastapi (graphql-ws)",
        "fraiseql-fastapi (sse)",
        "strawberry (graphql-ws)",
    }
    for name, entry in scenarios.items():
        for label, server in entry["servers"].items():
            summary = server["summary"]
            assert summary["all_ok"] is True, (name, label, server["runs"])
            if entry["scenario"]["kind"] == "memory":
                assert summary["subscribe_seconds"]["median"] > 0
                assert summary["rss_bytes_per_subscription"] is not None
            elif entry["scenario"]["kind"] == "connections":
                assert entry["scenario"]["connections"] == 3, name
                (run,) = server["runs"]
                assert 0 < run["connect_seconds"] < run["live_seconds"], (name, label)
                assert isinstance(run["rss_bytes_per_connection"], (int, float)), (name, label)
                assert summary["live_seconds"]["median"] > 0
                assert summary["connect_seconds"]["median"] > 0
                assert summary["rss_bytes_per_connection"] is not None
            else:
                assert summary["messages_per_second"]["median"] > 0
                assert summary["latency_p99_ms"]["median"] > 0
    assert {target["name"] for target in results["targets"]} >= {
        "fanout_100x1000: messages/s vs Strawberry",
        "steady_latency: p99",
        "10,000 subscriptions live",
        "fanout_100x1000: native CPU/message vs floor",
        "steady_latency: native p99 vs floor",
        "connections_1k: native memory per idle connection",
        "connections_15k: native memory per idle connection",
        "15,000 connections live (native)",
        "fanout_100x1000_positions: fraiseql-fastapi (positions) CPU/message vs without",
        "fanout_100x1000_positions: fraiseql-fastapi (native, positions) CPU/message vs without",
    }
    markdown = (tmp_path / "suite.md").read_text()
    assert markdown.startswith("# Benchmark results")
    assert "| fraiseql-fastapi |" in markdown and "| floor |" in markdown
    assert "resident memory per idle connection" in markdown
    for picture in ("fanout_100x1000.png", "steady_latency.png", "memory.png", "connections.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({picture})" in markdown


def test_micro_benchmarks_run_once_each() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(BENCHMARKS / "micro"),
            "--benchmark-disable",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert " passed" in completed.stdout
