"""Per-message delivery throughput of the ticker app and of its Strawberry peer, in one run.

    python benchmarks/run_ticker_load.py [--connections 100] [--events 1000] [--runs 3]

For each run and each server (alternating, so drift hits both alike): the server starts as a
subprocess on 127.0.0.1 pinned to CPU 0 (`taskset -c 0`, when available), the load client
(`benchmarks/load_client.py`) runs in another process pinned to CPU 1, opens the connections,
subscribes each to `ticks(channel: $ch) { id value }`, triggers `POST /burst` (rate 0) and
counts every message; then the server is stopped. Results (medians, and every run) go to
`benchmarks/results/ticker_load.json` and `.md`.

Servers: `examples/ticker/app.py` (fraiseql-fastapi, in-memory bus) and
`benchmarks/strawberry_ticker.py` (Strawberry, an asyncio.Queue per subscriber).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOAD_CLIENT = ROOT / "benchmarks" / "load_client.py"
RESULTS = ROOT / "benchmarks" / "results"
SERVERS: dict[str, Path] = {
    "fraiseql-fastapi": ROOT / "examples" / "ticker" / "app.py",
    "strawberry": ROOT / "benchmarks" / "strawberry_ticker.py",
}
#: Seconds a server may take to answer `GET /stats` after it is started.
STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Settings:
    """One benchmark invocation."""

    connections: int
    events: int
    runs: int
    timeout: float
    out: Path


def pinned(cpu: int, command: list[str]) -> list[str]:
    """`command` pinned to one CPU with taskset, when taskset and the CPU exist."""
    if shutil.which("taskset") and cpu < (os.cpu_count() or 1):
        return ["taskset", "-c", str(cpu), *command]
    return command


def free_port() -> int:
    """A port of 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_up(port: int, process: subprocess.Popen[bytes]) -> None:
    """Polls `GET /stats` until the server answers; raises if it exits or takes too long."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise TimeoutError(f"the server on port {port} did not start in {STARTUP_TIMEOUT} s")


@contextmanager
def running_server(script: Path) -> Iterator[tuple[int, int]]:
    """Starts `script` on a free port, pinned to CPU 0; yields (pid, port); always stops it."""
    port = free_port()
    command = [sys.executable, str(script), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "FRAISEQL_EVENT_BUS": "memory"}
    process = subprocess.Popen(pinned(0, [*command, "--log-level", "warning"]), env=env, cwd=ROOT)
    try:
        wait_until_up(port, process)
        yield process.pid, port
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def run_client(settings: Settings, pid: int, port: int) -> dict[str, Any]:
    """Runs the load client (pinned to CPU 1) against the server; returns its report."""
    command = [
        sys.executable,
        str(LOAD_CLIENT),
        f"--url=ws://127.0.0.1:{port}/graphql",
        f"--connections={settings.connections}",
        f"--events={settings.events}",
        f"--server-pid={pid}",
        f"--timeout={settings.timeout}",
    ]
    completed = subprocess.run(
        pinned(1, command), capture_output=True, text=True, timeout=settings.timeout + 60
    )
    lines = completed.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"the load client printed nothing: {completed.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def measure(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every run's report, per server."""
    reports: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
    for run in range(settings.runs):
        for name, script in SERVERS.items():
            with running_server(script) as (pid, port):
                report = run_client(settings, pid, port)
            reports[name].append(report)
            print(f"run {run + 1}/{settings.runs} {name}: {one_line(report)}", file=sys.stderr)
    return reports


def one_line(report: dict[str, Any]) -> str:
    """A short human summary of one report."""
    if "error" in report:
        return f"error: {report['error']}"
    rate = report.get("messages_per_second") or 0
    cpu = report.get("server_cpu_us_per_message")
    cpu_text = f"{cpu:.1f} µs CPU/msg" if cpu is not None else "no CPU figure"
    return f"{rate:,.0f} msg/s, {cpu_text}, ok={report['ok']}"


def median_of(reports: Sequence[dict[str, Any]], key: str) -> float | None:
    """The median of `key` over the reports that have it."""
    values = [r[key] for r in reports if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def summarize(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of one server, and whether every run passed its checks."""
    return {
        "messages_per_second": median_of(reports, "messages_per_second"),
        "server_cpu_us_per_message": median_of(reports, "server_cpu_us_per_message"),
        "seconds": median_of(reports, "seconds"),
        "messages_delivered": median_of(reports, "messages_delivered"),
        "all_runs_ok": all(r.get("ok") for r in reports),
    }


def environment() -> dict[str, Any]:
    """Where the figures were taken."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "pinned": bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2,
    }


def write_results(settings: Settings, reports: dict[str, list[dict[str, Any]]]) -> None:
    """Writes ticker_load.json and ticker_load.md into `settings.out`."""
    summary = {name: summarize(runs) for name, runs in reports.items()}
    result = {
        "connections": settings.connections,
        "events": settings.events,
        "runs": settings.runs,
        "environment": environment(),
        "summary": summary,
        "reports": reports,
    }
    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / "ticker_load.json").write_text(json.dumps(result, indent=2) + "\n")
    (settings.out / "ticker_load.md").write_text(markdown(settings, summary))


def markdown(settings: Settings, summary: dict[str, dict[str, Any]]) -> str:
    """The results as a Markdown page."""
    env = environment()
    lines = [
        "# Ticker load: per-message delivery throughput",
        "",
        f"{settings.connections} connections x {settings.events} events "
        f"({settings.connections * settings.events:,} messages), one burst at full speed, "
        f"median of {settings.runs} run(s) per server. Server pinned to CPU 0, load client "
        f"to CPU 1: {'yes' if env['pinned'] else 'no'}; Python {env['python']}, "
        f"{env['cpu_count']} CPUs. Command: `python benchmarks/run_ticker_load.py "
        f"--connections {settings.connections} --events {settings.events} "
        f"--runs {settings.runs}`.",
        "",
        "| server | messages/s | server CPU µs / message | seconds | all delivered, in order |",
        "|---|---:|---:|---:|---|",
    ]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {_number(row['messages_per_second'], '{:,.0f}')} "
            f"| {_number(row['server_cpu_us_per_message'], '{:.1f}')} "
            f"| {_number(row['seconds'], '{:.3f}')} | {'yes' if row['all_runs_ok'] else 'NO'} |"
        )
    lines += [
        "",
        "messages/s: messages delivered to all connections divided by the seconds from the "
        "trigger to the last message. Server CPU: user + system time of the server process "
        "over the same span (from /proc), divided by the messages delivered. The load client "
        "is one Python process; when its CPU is saturated, messages/s measures the client and "
        "the CPU column is the fairer comparison.",
        "",
    ]
    return "\n".join(lines)


def _number(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """The command line as `Settings`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="per load-client run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if min(args.connections, args.events, args.runs) < 1:
        parser.error("--connections, --events and --runs must be positive")
    return Settings(args.connections, args.events, args.runs, args.timeout, args.out)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and writes the results; non-zero if a run failed its checks."""
    settings = parse_args(argv)
    reports = measure(settings)
    write_results(settings, reports)
    print((settings.out / "ticker_load.md").read_text())
    return 0 if all(r.get("ok") for runs in reports.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
