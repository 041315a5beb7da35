"""The benchmark suite: this product's ticker, Strawberry and the framework floor side by side, in
one run, under the same load client. `scripts/bench` runs it (with the micro-benchmarks).

    python benchmarks/suite.py [--runs 3] [--only fanout_100x1000,steady_latency] [--quick]
        [--out benchmarks/results] [--client python|rust]

Servers (each on 127.0.0.1, uvicorn, one worker, pinned to CPU 0; the load client is its own
process pinned to CPU 1):
- `fraiseql-fastapi`: `examples/ticker/app.py` (through `benchmarks/fraiseql_server.py`, which
  can swap its resolver);
- `strawberry`: `benchmarks/strawberry_ticker.py`, Strawberry's `GraphQLRouter` on FastAPI with
  the same schema, fed by an in-process broadcast;
- `floor`: `benchmarks/floor_server.py`, a plain Starlette WebSocket endpoint forwarding one
  pre-serialized frame per subscriber, no GraphQL.

`--client rust` runs the Rust load client (`benchmarks/load-client`, built by `scripts/install`)
instead of `load_client.py` for the graphql-transport-ws servers; it takes the same flags and
writes the same report (the other protocols stay on the Python client).

Every scenario is in `scenarios.py`; `figures.py` sums the runs up and checks the targets,
`report.py` writes the results. Throughput and latency scenarios keep one process per
server up for all their runs and alternate the servers run by run, so drift hits each alike;
memory and connections scenarios start a fresh server for each run. Results: `suite.json`
(everything, every run), `suite.md` (the tables, the targets) and PNG plots in `--out`; with
the default `--out` the table is also copied into `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import report
from figures import environment, summarize, targets
from scenarios import SCENARIOS, Scenario, Server, quick

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOAD_CLIENT = HERE / "load_client.py"
RUST_LOAD_CLIENT = HERE / "load-client" / "target" / "release" / "fraiseql-load-client"
CLIENTS = ("python", "rust")
RESULTS = HERE / "results"
#: Seconds a server may take to answer `GET /stats` after it is started.
STARTUP_TIMEOUT = 30.0
#: uvicorn's WebSocket implementation for every server (`--ws`; None: uvicorn's default).
WS_IMPLEMENTATION: str | None = os.environ.get("BENCH_UVICORN_WS")
QUERY = "subscription ($ch: String!) { ticks(channel: $ch) { id value ts } }"


# ----- processes ---------------------------------------------------------------------------------


def raise_open_files_limit() -> None:
    """Raises the soft limit of open files to the hard one, for this process and so for the
    servers and load clients it starts (every connection is a descriptor on both sides)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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


@dataclass
class Running:
    """A started server."""

    server: Server
    process: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid


def wait_until_up(running: Running) -> None:
    """Polls `GET /stats` until the server answers; raises if it exits or takes too long."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{running.server.label} exited ({running.process.returncode})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/stats", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise TimeoutError(f"{running.server.label} did not start in {STARTUP_TIMEOUT} s")


@contextmanager
def started(server: Server) -> Iterator[Running]:
    """Starts `server` on a free port, pinned to CPU 0; always stops it."""
    port = free_port()
    command = [
        sys.executable,
        str(HERE / server.script),
        "--host=127.0.0.1",
        f"--port={port}",
        "--log-level=warning",
        *server.args,
    ]
    env = {**os.environ, "FRAISEQL_EVENT_BUS": "memory", "PYTHONUNBUFFERED": "1"}
    if WS_IMPLEMENTATION:
        command.append(f"--ws={WS_IMPLEMENTATION}")
    process = subprocess.Popen(pinned(0, command), env=env, cwd=ROOT)
    running = Running(server, process, port)
    try:
        wait_until_up(running)
        yield running
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


def client_command(client: str, protocol: str) -> list[str]:
    """The command starting the load client: the Rust one when asked and it speaks `protocol`."""
    if client == "rust" and protocol == "graphql-transport-ws":
        if not RUST_LOAD_CLIENT.is_file():
            raise SystemExit(f"no {RUST_LOAD_CLIENT}: run scripts/install to build it")
        return [str(RUST_LOAD_CLIENT)]
    return [sys.executable, str(LOAD_CLIENT)]


def run_client(scenario: Scenario, running: Running, client: str = "python") -> dict[str, Any]:
    """Runs the load client (pinned to CPU 1) against `running`; returns its report."""
    command = [
        *client_command(client, running.server.protocol),
        f"--url=ws://127.0.0.1:{running.port}/graphql",
        f"--connections={scenario.connections}",
        f"--subscriptions={scenario.subscriptions}",
        f"--events={scenario.events}",
        f"--rate={scenario.rate}",
        f"--query={QUERY}",
        f"--server-pid={running.pid}",
        f"--timeout={scenario.timeout}",
        f"--channel={scenario.name}",
        f"--protocol={running.server.protocol}",
        f"--connect-concurrency={scenario.connect_concurrency}",
    ]
    if scenario.kind == "flat":
        command.append("--sample-every=0.5")
    try:
        completed = subprocess.run(
            pinned(1, command), capture_output=True, text=True, timeout=scenario.timeout + 60
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "the load client did not finish in time"}
    lines = completed.stdout.strip().splitlines()
    if not lines:
        return {
            "ok": False,
            "error": f"the load client printed nothing: {completed.stderr[-2000:]}",
        }
    report: dict[str, Any] = json.loads(lines[-1])
    if scenario.kind != "flat":
        report.pop("rss_samples", None)
    return report


# ----- running the scenarios ---------------------------------------------------------------------


#: The kinds whose every run gets a server of its own (what they measure is its memory).
FRESH_SERVER_KINDS = ("memory", "connections")


def run_scenario(
    scenario: Scenario, log: Any, client: str = "python"
) -> dict[str, list[dict[str, Any]]]:
    """Every run's report, per server label."""
    reports: dict[str, list[dict[str, Any]]] = {s.label: [] for s in scenario.servers}
    if scenario.kind in FRESH_SERVER_KINDS:
        for run in range(scenario.runs):
            for server in scenario.servers:
                with started(server) as running:
                    report = run_client(scenario, running, client)
                reports[server.label].append(report)
                log(scenario, run, server, report)
        return reports
    with ExitStack() as stack:
        servers = [stack.enter_context(started(server)) for server in scenario.servers]
        for run in range(scenario.runs):
            for running in servers:
                report = run_client(scenario, running, client)
                reports[running.server.label].append(report)
                log(scenario, run, running.server, report)
    return reports


def print_progress(scenario: Scenario, run: int, server: Server, report: dict[str, Any]) -> None:
    """One line per run on stderr."""
    if "error" in report:
        text = f"error: {report['error']}"
    elif scenario.kind == "memory":
        per = report.get("rss_bytes_per_subscription") or 0
        text = f"{per:,.0f} B/subscription, live in {report.get('subscribe_seconds') or 0:.3f} s"
    elif scenario.kind == "connections":
        per = report.get("rss_bytes_per_connection") or 0
        connect, live = report.get("connect_seconds") or 0, report.get("live_seconds") or 0
        text = f"{per:,.0f} B/connection, connected in {connect:.3f} s, live in {live:.3f} s"
    else:
        rate = report.get("messages_per_second") or 0
        cpu = report.get("server_cpu_us_per_message") or 0
        p99 = (report.get("latency") or {}).get("p99_ms") or 0
        text = f"{rate:,.0f} msg/s, {cpu:.1f} µs CPU/msg, p99 {p99:.2f} ms"
    status = "ok" if report.get("ok") else "FAILED"
    print(
        f"[{scenario.name} {run + 1}/{scenario.runs}] {server.label}: {text} ({status})",
        file=sys.stderr,
        flush=True,
    )


def run_suite(scenarios: Sequence[Scenario], client: str = "python") -> dict[str, Any]:
    """Runs the scenarios; returns the results (without the targets)."""
    results: dict[str, Any] = {}
    for scenario in scenarios:
        started_at = time.monotonic()
        reports = run_scenario(scenario, print_progress, client)
        results[scenario.name] = {
            "scenario": {**asdict(scenario), "servers": [asdict(s) for s in scenario.servers]},
            "seconds": time.monotonic() - started_at,
            "servers": {
                label: {"summary": summarize(runs), "runs": runs} for label, runs in reports.items()
            },
        }
    return results


def select(names: str | None, runs: int | None, is_quick: bool) -> list[Scenario]:
    """The scenarios asked for, adjusted by --runs and --quick."""
    chosen = list(SCENARIOS)
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = set(wanted) - {s.name for s in SCENARIOS}
        if unknown:
            raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        chosen = [s for s in SCENARIOS if s.name in wanted]
    if is_quick:
        chosen = [quick(s) for s in chosen]
    if runs is not None:
        chosen = [replace(s, runs=runs) for s in chosen]
    return chosen


@dataclass
class Options:
    scenarios: list[Scenario]
    out: Path
    quick: bool
    readme: bool
    micro: Path | None = field(default=None)
    rerender: Path | None = field(default=None)
    client: str = "python"


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", help="comma-separated scenario names: " + ", ".join(s.name for s in SCENARIOS)
    )
    parser.add_argument("--runs", type=int, help="runs per scenario (default: the scenario's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--micro", type=Path, help="pytest-benchmark JSON to include in the report")
    parser.add_argument(
        "--rerender", type=Path, help="write the report and plots again from a suite.json"
    )
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default="python",
        help="load client: load_client.py or the Rust one (graphql-transport-ws servers)",
    )
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be positive")
    return Options(
        select(args.only, args.runs, args.quick),
        args.out,
        args.quick,
        readme=args.out.resolve() == RESULTS.resolve() and not args.quick,
        micro=args.micro,
        rerender=args.rerender,
        client=args.client,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the suite and writes the results; non-zero if a run failed its checks."""
    options = parse_args(argv)
    raise_open_files_limit()
    if options.rerender:
        document = json.loads(options.rerender.read_text())
        report.write(document, options.out, readme=HERE / "README.md" if options.readme else None)
        return 0
    started_at = time.monotonic()
    results = run_suite(options.scenarios, options.client)
    document = {
        "environment": environment(),
        "client": options.client,
        "quick": options.quick,
        "seconds": time.monotonic() - started_at,
        "scenarios": results,
        "targets": [{**asdict(t), "met": t.met} for t in targets(results)],
    }
    if options.micro and options.micro.exists():
        document["micro"] = report.micro_summary(json.loads(options.micro.read_text()))
    report.write(document, options.out, readme=HERE / "README.md" if options.readme else None)
    print((options.out / "suite.md").read_text())
    failed = [
        name
        for name, entry in results.items()
        for label, server in entry["servers"].items()
        if not server["summary"]["all_ok"]
    ]
    if failed:
        print(f"runs failed their checks in: {', '.join(sorted(set(failed)))}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
