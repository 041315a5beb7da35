"""The suite's servers and scenarios (what `suite.py` runs)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Server:
    """A server as a scenario runs it: its label, script and extra arguments, and the protocol
    the load client speaks to it (graphql-transport-ws, graphql-ws or sse)."""

    label: str
    script: str
    args: tuple[str, ...] = ()
    protocol: str = "graphql-transport-ws"


OURS = Server("fraiseql-fastapi", "fraiseql_server.py")
#: The same server with its WebSockets served by the Rust core (`fraiseql_fastapi.native`).
NATIVE = Server(
    "fraiseql-fastapi (native)",
    "fraiseql_server.py",
    ("--ws", "fraiseql_fastapi.native.uvicorn:NativeWebSocketProtocol"),
)
STRAWBERRY = Server("strawberry", "strawberry_ticker.py")
FLOOR = Server("floor", "floor_server.py")
ALL = (OURS, NATIVE, STRAWBERRY, FLOOR)
#: The same servers over the other protocols (`protocols_100x1000`).
OURS_LEGACY = replace(OURS, label="fraiseql-fastapi (graphql-ws)", protocol="graphql-ws")
OURS_SSE = replace(OURS, label="fraiseql-fastapi (sse)", protocol="sse")
STRAWBERRY_LEGACY = replace(STRAWBERRY, label="strawberry (graphql-ws)", protocol="graphql-ws")
#: Ours with cursors on every event (`fanout_100x1000_positions`).
OURS_POSITIONS = replace(OURS, label="fraiseql-fastapi (positions)", args=("--positions",))
NATIVE_POSITIONS = replace(
    NATIVE, label="fraiseql-fastapi (native, positions)", args=(*NATIVE.args, "--positions")
)
#: The label of each server's positions twin.
POSITIONS = {OURS.label: OURS_POSITIONS.label, NATIVE.label: NATIVE_POSITIONS.label}


@dataclass(frozen=True)
class Scenario:
    """One scenario: what the load client does, against which servers, how many times."""

    name: str
    title: str
    kind: str  # "throughput", "latency", "memory", "connections" or "flat"
    servers: tuple[Server, ...]
    connections: int
    subscriptions: int = 1
    events: int = 1000
    rate: float = 0.0
    runs: int = 3
    timeout: float = 120.0
    #: Handshakes in flight at once (the load clients' `--connect-concurrency`; 50 is theirs).
    connect_concurrency: int = 50

    @property
    def messages(self) -> int:
        return self.connections * self.subscriptions * self.events


def memory(size: int, servers: tuple[Server, ...], runs: int = 2) -> Scenario:
    """Idle subscriptions: `size` over 100 connections, no events."""
    limit = ("--max-subscriptions", str(max(100, size // 100)))
    with_limit = tuple(
        replace(s, args=s.args + limit) if s.script == OURS.script else s for s in servers
    )
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


def connections(size: int, servers: tuple[Server, ...], runs: int = 2) -> Scenario:
    """Idle connections: `size` connections with one subscription each, no events.

    No server here limits connections, so none needs a flag: uvicorn's `--limit-concurrency` is
    off, one subscription is within our `--max-subscriptions` (per connection), Strawberry has
    no limit, and uvicorn's listen backlog of 2,048 is far above the handshakes in flight. What
    bounds them is the open files of a process: both load clients raise their soft limit to
    the hard one, and so does `suite.py` for the servers it starts."""
    return Scenario(
        f"connections_{size // 1000}k",
        f"{size:,} idle connections x 1 subscription",
        "connections",
        servers,
        connections=size,
        subscriptions=1,
        events=0,
        runs=runs,
        timeout=300.0,
        connect_concurrency=200,
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
        "protocols_100x1000",
        "Each protocol: 100 connections x 1 subscription, 1,000 events, over graphql-transport-ws,"
        " the legacy graphql-ws and SSE",
        "throughput",
        (OURS, OURS_LEGACY, OURS_SSE, STRAWBERRY_LEGACY),
        connections=100,
    ),
    Scenario(
        "fanout_100x1000_positions",
        "Resume's cost per event: fan-out 100 connections x 1 subscription, 1,000 events, with"
        " cursors on every event (positions) and without",
        "throughput",
        (OURS, OURS_POSITIONS, NATIVE, NATIVE_POSITIONS, STRAWBERRY, FLOOR),
        connections=100,
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
    memory(100_000, (OURS, NATIVE, FLOOR), runs=1),
    connections(1_000, ALL),
    connections(5_000, ALL),
    connections(15_000, ALL, runs=1),
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
    if scenario.kind == "connections":
        return replace(scenario, connections=3, runs=1, timeout=60, connect_concurrency=2)
    return replace(
        scenario,
        connections=min(scenario.connections, 3),
        subscriptions=min(scenario.subscriptions, 3),
        events=min(scenario.events, 20),
        rate=min(scenario.rate, 200.0),
        runs=1,
        timeout=60,
    )
