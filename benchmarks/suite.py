"""The benchmark suite: this product's ticker, Strawberry and the framework floor side by side, in
one run, under the same load client. `scripts/bench` runs it (with the micro-benchmarks).

    python benchmarks/suite.py [--runs 3] [--only fanout_100x1000,steady_latency] [--quick]
        [--out benchmarks/results]

Servers (each on 127.0.0.1, uvicorn, one worker, pinned to CPU 0; the load client is its own
process pinned to CPU 1):
- `fraiseql-fastapi`: `examples/ticker/app.py` (through `benchmarks/fraiseql_server.py`, which
  can swap its resolver);
- `strawberry`: `benchmarks/strawberry_ticker.py`, Strawberry's `GraphQLRouter` on FastAPI with
  the same schema, fed by an in-process broadcast;
- `floor`: `benchmarks/floor_server.py`, a plain Starlette WebSocket endpoint forwarding one
  pre-serialized frame per subscriber, no GraphQL.

Every scenario is in `SCENARIOS` below. Throughput and latency scenarios keep one process per
server up for all their runs and alternate the servers run by run, so drift hits each alike;
memory scenarios start a fresh server for each run. Results: `suite.json` (everything, every
run), `suite.md` (the tables, the targets) and PNG plots in `--out`; with the default `--out`
the table is also copied into `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import json
import os
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
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOAD_CLIENT = HERE / "load_client.py"
RESULTS = HERE / "results"
#: Seconds a server may take to answer `GET /stats` after it is started.
STARTUP_TIMEOUT = 30.0
#: uvicorn's WebSocket implementation for every server (`--ws`; None: uvicorn's default).
WS_IMPLEMENTATION: str | None = os.environ.get("BENCH_UVICORN_WS")
QUERY = "subscription ($ch: String!) { ticks(channel: $ch) { id value ts } }"


@dataclass(frozen=True)
class Server:
    """A server as a scenario runs it: its label, script and extra arguments."""

    label: str
    script: str
    args: tuple[str, ...] = ()


OURS = Server("fraiseql-fastapi", "fraiseql_server.py")
STRAWBERRY = Server("strawberry", "strawberry_ticker.py")
FLOOR = Server("floor", "floor_server.py")
ALL = (OURS, STRAWBERRY, FLOOR)


@dataclass(frozen=True)
class Scenario:
    """One scenario: what the load client does, against which servers, how many times."""

    name: str
    title: str
    kind: str  # "throughput", "latency", "memory" or "flat"
    servers: tuple[Server, ...]
    connections: int
    subscriptions: int = 1
    events: int = 1000
    rate: float = 0.0
    runs: int = 3
    timeout: float = 120.0

    @property
    def messages(self) -> int:
        return self.connections * self.subscriptions * self.events


def memory(size: int, servers: tuple[Server, ...], runs: int = 2) -> Scenario:
    """Idle subscriptions: `size` over 100 connections, no events."""
    limit = ("--max-subscriptions", str(max(100, size // 100)))
    with_limit = tuple(replace(s, args=s.args + limit) if s is OURS else s for s in servers)
    return Scenario(
        f"memory_{size // 1000}k",
        f"{size:,} idle subscriptions over 100 connections",
        "memory",
        with_limit,
        connections=100,
        subscriptions=size // 100,
        events=0,
        runs=runs,
        timeout=300.0,
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "fanout_100x1000",
        "Fan-out: 100 connections x 1 subscription, 1,000 events",
        "throughput",
        ALL,
        connections=100,
    ),
    Scenario(
        "fanout_1000x200",
        "Fan-out: 1,000 connections x 1 subscription, 200 events",
        "throughput",
        ALL,
        connections=1000,
        events=200,
        runs=2,  # Strawberry needs about 45 s a run here
    ),
    Scenario(
        "one_connection_100_subscriptions",
        "Many subscriptions on one connection: 1 connection x 100 subscriptions, 1,000 events",
        "throughput",
        ALL,
        connections=1,
        subscriptions=100,
    ),
    Scenario(
        "steady_latency",
        "Latency under a steady load: 100 connections, 100 events/s for 10 s",
        "latency",
        ALL,
        connections=100,
        rate=100.0,
    ),
    Scenario(
        "resolver",
        "Resolver work: 100 connections x 1,000 events, pass-through vs pydantic resolver",
        "throughput",
        (
            replace(
                OURS, label="fraiseql-fastapi (pass-through)", args=("--resolver", "passthrough")
            ),
            replace(OURS, label="fraiseql-fastapi (pydantic)", args=("--resolver", "pydantic")),
            replace(STRAWBERRY, label="strawberry (pydantic)", args=("--resolver", "pydantic")),
        ),
        connections=100,
    ),
    memory(1_000, ALL),
    memory(10_000, ALL),
    memory(100_000, (OURS, FLOOR), runs=1),
    Scenario(
        "rss_1m_messages",
        "Resident memory across 1,000,000 delivered messages (100 connections x 10,000 events)",
        "flat",
        (OURS,),
        connections=100,
        events=10_000,
        runs=1,
        timeout=300.0,
    ),
)


def quick(scenario: Scenario) -> Scenario:
    """The same scenario on tiny numbers (the smoke test's), one run."""
    if scenario.kind == "memory":
        return replace(
            scenario,
            connections=2,
            subscriptions=max(1, scenario.subscriptions // 100),
            runs=1,
            timeout=60,
        )
    return replace(
        scenario,
        connections=min(scenario.connections, 3),
        subscriptions=min(scenario.subscriptions, 3),
        events=min(scenario.events, 20),
        rate=min(scenario.rate, 200.0),
        runs=1,
        timeout=60,
    )


# ----- processes ---------------------------------------------------------------------------------


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


def run_client(scenario: Scenario, running: Running) -> dict[str, Any]:
    """Runs the load client (pinned to CPU 1) against `running`; returns its report."""
    command = [
        sys.executable,
        str(LOAD_CLIENT),
        f"--url=ws://127.0.0.1:{running.port}/graphql",
        f"--connections={scenario.connections}",
        f"--subscriptions={scenario.subscriptions}",
        f"--events={scenario.events}",
        f"--rate={scenario.rate}",
        f"--query={QUERY}",
        f"--server-pid={running.pid}",
        f"--timeout={scenario.timeout}",
        f"--channel={scenario.name}",
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


def run_scenario(scenario: Scenario, log: Any) -> dict[str, list[dict[str, Any]]]:
    """Every run's report, per server label."""
    reports: dict[str, list[dict[str, Any]]] = {s.label: [] for s in scenario.servers}
    if scenario.kind == "memory":
        for run in range(scenario.runs):
            for server in scenario.servers:
                with started(server) as running:
                    report = run_client(scenario, running)
                reports[server.label].append(report)
                log(scenario, run, server, report)
        return reports
    with ExitStack() as stack:
        servers = [stack.enter_context(started(server)) for server in scenario.servers]
        for run in range(scenario.runs):
            for running in servers:
                report = run_client(scenario, running)
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


METRICS = (
    "messages_per_second",
    "server_cpu_us_per_message",
    "seconds",
    "client_cpu_seconds",
    "subscribe_seconds",
    "subscriptions_per_second",
    "rss_bytes_per_subscription",
)
LATENCY_METRICS = ("p50_ms", "p99_ms", "max_ms")


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """Median, min and max, or None for no values."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per metric, the median and the spread over the runs; whether every run passed."""
    summary: dict[str, Any] = {"runs": len(reports), "all_ok": all(r.get("ok") for r in reports)}
    for key in METRICS:
        summary[key] = spread([r[key] for r in reports if isinstance(r.get(key), (int, float))])
    for key in LATENCY_METRICS:
        values = [r["latency"][key] for r in reports if r.get("latency")]
        summary[f"latency_{key}"] = spread(values)
    growth = [g for r in reports if (g := rss_growth(r)) is not None]
    summary["rss_growth"] = spread(growth)
    return summary


def rss_growth(report: dict[str, Any]) -> float | None:
    """Relative growth of the server's RSS from the start of the burst to its end."""
    samples = report.get("rss_samples") or []
    if len(samples) < 2 or not samples[0][2]:
        return None
    return float(samples[-1][2] / samples[0][2] - 1)


@dataclass(frozen=True)
class Target:
    """One target of issue 5: a measured value against a limit."""

    name: str
    measured: float | None
    limit: float
    higher_is_better: bool = False
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit


def median_of(results: dict[str, Any], scenario: str, server: str, metric: str) -> float | None:
    entry = results.get(scenario, {}).get("servers", {}).get(server, {}).get("summary", {})
    value = entry.get(metric)
    return None if value is None else float(value["median"])


def targets(results: dict[str, Any]) -> list[Target]:
    """The targets that the scenarios run can tell."""
    found: list[Target] = []
    for name in ("fanout_100x1000", "fanout_1000x200", "one_connection_100_subscriptions"):
        if name not in results:
            continue
        ours = median_of(results, name, OURS.label, "messages_per_second")
        peer = median_of(results, name, STRAWBERRY.label, "messages_per_second")
        ratio = ours / peer if ours and peer else None
        found.append(Target(f"{name}: messages/s vs Strawberry", ratio, 7.0, True, "x"))
        cpu = median_of(results, name, OURS.label, "server_cpu_us_per_message")
        floor = median_of(results, name, FLOOR.label, "server_cpu_us_per_message")
        found.append(
            Target(
                f"{name}: server CPU/message vs floor",
                cpu / floor if cpu and floor else None,
                1.25,
                unit="x",
            )
        )
    if "steady_latency" in results:
        p99 = median_of(results, "steady_latency", OURS.label, "latency_p99_ms")
        found.append(Target("steady_latency: p99", p99, 5.0, unit="ms"))
    for name in ("memory_1k", "memory_10k", "memory_100k"):
        if name in results:
            per = median_of(results, name, OURS.label, "rss_bytes_per_subscription")
            found.append(Target(f"{name}: memory per idle subscription", per, 6 * 1024, unit="B"))
    if "memory_10k" in results:
        live = median_of(results, "memory_10k", OURS.label, "subscribe_seconds")
        found.append(Target("10,000 subscriptions live", live, 1.0, unit="s"))
    if "memory_100k" in results:
        entry = results["memory_100k"]["servers"][OURS.label]["summary"]
        found.append(
            Target(
                "100,000 idle subscriptions in one process",
                1.0 if entry["all_ok"] else 0.0,
                1.0,
                True,
            )
        )
    if "rss_1m_messages" in results:
        growth = median_of(results, "rss_1m_messages", OURS.label, "rss_growth")
        found.append(Target("RSS growth across 1,000,000 messages", growth, 0.10, unit="%"))
    return found


def environment() -> dict[str, Any]:
    """Where and with what the figures were taken."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in (
        "fraiseql-fastapi",
        "fraiseql-core-rs",
        "strawberry-graphql",
        "fastapi",
        "starlette",
        "uvicorn",
        "websockets",
        "graphql-core",
        "pydantic",
        "picows",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    cpu_model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            None,
        )
        if Path("/proc/cpuinfo").exists()
        else None
    )
    import platform

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model,
        "cpu_count": os.cpu_count(),
        "pinned": bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2,
        "versions": versions,
    }


def run_suite(scenarios: Sequence[Scenario]) -> dict[str, Any]:
    """Runs the scenarios; returns the results (without the targets)."""
    results: dict[str, Any] = {}
    for scenario in scenarios:
        started_at = time.monotonic()
        reports = run_scenario(scenario, print_progress)
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
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the suite and writes the results; non-zero if a run failed its checks."""
    import report

    options = parse_args(argv)
    if options.rerender:
        document = json.loads(options.rerender.read_text())
        report.write(document, options.out, readme=HERE / "README.md" if options.readme else None)
        return 0
    started_at = time.monotonic()
    results = run_suite(options.scenarios)
    document = {
        "environment": environment(),
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
    sys.path.insert(0, str(HERE))
    sys.exit(main())
