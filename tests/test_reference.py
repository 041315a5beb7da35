"""The reference pages say what the code does: every option and default of
docs/reference/options.md (and of `register_subscription` on docs/reference/core.md) is the
signature's; docs/reference/metrics.md lists exactly the keys of `get_metrics()` per bus and
the metrics a Prometheus scrape gets; the Rust core page's programs (docs/examples/core/) run
and do what it says, over real sockets; and the benchmarks page shows the current
benchmarks/results/ (tables and plots) in the built site."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import re
import shlex
import socket
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from example_modules import fresh_module
from helpers import COUNTER, ROOT, counters, protocol_app, running_server, until, ws_client
from prometheus_client import CollectorRegistry
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from fraiseql_core_rs import PySubscriptionExecutor
from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.http_abstraction import ProtocolOptions, WebSocketTransport
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory
from fraiseql_fastapi.http_abstraction.starlette import (
    SubscriptionRoute,
    create_subscription_app,
    serve_websocket,
)
from fraiseql_fastapi.limits import Limits
from fraiseql_fastapi.metrics import PrometheusCollector

DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
RESULTS = ROOT / "benchmarks" / "results"
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TICKS = "subscription { ticks { n } }"

#: What each table of options.md documents, by the name its heading or column gives.
OPTION_TARGETS: dict[str, Any] = {
    "SubscriptionManager": SubscriptionManager,
    "Limits": Limits,
    "ProtocolOptions": ProtocolOptions,
    "subscription": subscription,
    "EventBusConfig.memory": EventBusConfig.memory,
    "EventBusConfig.redis": EventBusConfig.redis,
    "EventBusConfig.postgresql": EventBusConfig.postgresql,
    "SubscriptionRouterFactory.create": SubscriptionRouterFactory.create,
    "create_subscription_app": create_subscription_app,
    "SubscriptionRoute": SubscriptionRoute,
    "serve_websocket": serve_websocket,
    "WebSocketTransport": WebSocketTransport,
}


# ----- reading the pages ------------------------------------------------------------------------


def sections(page: Path) -> dict[str, list[list[str]]]:
    """The first table under each `## ` heading of `page`: its rows (the header first) as cells."""
    tables: dict[str, list[list[str]]] = {}
    heading = None
    ended: set[str] = set()
    for line in page.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        elif heading is None or heading in ended:
            continue
        elif line.startswith("|"):
            if not line.startswith("|---"):
                tables.setdefault(heading, []).append(cells(line))
        elif heading in tables:
            ended.add(heading)
    return tables


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def code(cell: str) -> str:
    """`x` -> x."""
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match is not None, f"not a code cell: {cell!r}"
    return match.group(1)


def documented_options(page: Path, links: bool = True) -> dict[str, dict[str, str]]:
    """Target name -> {option: its default cell} for each options table of `page`: a table
    `option | default | meaning` documents what its heading names first (`@subscription(...)`
    -> subscription); one with a column per target, each column's (cell "—": not taken).
    `links`: every row's meaning links the page that explains it."""
    found: dict[str, dict[str, str]] = {}
    for heading, (header, *rows) in sections(page).items():
        if header[0] != "option":
            continue
        if header[1] == "default":
            name = re.search(r"`@?([\w.]+)", heading)
            assert name is not None, heading
            columns = {1: name.group(1)}
        else:
            columns = {i: code(header[i]) for i in range(1, len(header) - 1)}
        for row in rows:
            assert not links or re.search(r"\]\([^)]+\)", row[-1]), f"{heading}: {row[0]}"
            for i, target in columns.items():
                if row[i] != "—":
                    found.setdefault(target, {})[code(row[0])] = row[i]
    return found


def assert_matches_signature(target: str, function: Any, documented: dict[str, str]) -> None:
    """Every parameter of `function` (but positional-only ones: `self`, the decorated
    function) is documented with its default, and nothing else is."""
    parameters = {
        p.name: p
        for p in inspect.signature(function).parameters.values()
        if p.kind is not inspect.Parameter.POSITIONAL_ONLY
    }
    assert set(documented) == set(parameters), (
        f"{target}: missing {sorted(set(parameters) - set(documented))}, "
        f"not parameters {sorted(set(documented) - set(parameters))}"
    )
    for name, cell in documented.items():
        default = parameters[name].default
        if cell == "required":
            assert default is inspect.Parameter.empty, f"{target}({name}=) has a default"
            continue
        value = ast.literal_eval(code(cell))
        assert type(value) is type(default) and value == default, (
            f"{target}({name}=): the page says {cell}, the code {default!r}"
        )


def included(page: Path) -> set[str]:
    """The files the page's `--8<--` lines include."""
    return {m.split(":")[0] for m in re.findall(r'--8<-- "([^"]+)"', page.read_text())}


# ----- options ------------------------------------------------------------------------------


def test_options_page_lists_every_option_with_its_default() -> None:
    documented = documented_options(REFERENCE / "options.md")
    assert set(documented) == set(OPTION_TARGETS)
    for target, function in OPTION_TARGETS.items():
        assert_matches_signature(target, function, documented[target])


def test_option_defaults_are_what_the_objects_get() -> None:
    """The defaults that are not plain signature values, as the objects report them."""
    assert EventBusConfig.memory().history == 1000
    assert EventBusConfig.memory().history_seconds == 120.0
    redis = EventBusConfig.redis(REDIS_URL)
    assert redis.consumer_group == "fraiseql-subscriptions" and redis.tls_ca_file is None
    postgresql = EventBusConfig.postgresql(POSTGRES_URL)
    assert postgresql.channel_prefix == "fraiseql" and postgresql.retention == 3600.0
    manager = SubscriptionManager(subscriptions=counters.fields)
    assert manager.executor.config.bus_type == "memory", "bus=None is the in-memory bus"


def test_register_subscription_table_is_the_signature() -> None:
    documented = documented_options(REFERENCE / "core.md", links=False)
    assert set(documented) == {"register_subscription"}
    function = PySubscriptionExecutor.register_subscription
    assert_matches_signature("register_subscription", function, documented["register_subscription"])


# ----- metrics --------------------------------------------------------------------------------


def documented_keys(bus: str) -> set[str]:
    """The get_metrics() keys the page lists for `bus` ("memory", "Redis", "PostgreSQL")."""
    header, *rows = sections(REFERENCE / "metrics.md")["`manager.get_metrics()`"]
    assert header == ["key", "kind", "buses", "meaning"]
    return {
        code(key)
        for key, _, buses, _ in rows
        if buses == "all" or bus in [b.strip() for b in buses.split(",")]
    }


def documented_prometheus() -> set[tuple[str, str, tuple[str, ...]]]:
    header, *rows = sections(REFERENCE / "metrics.md")["Prometheus"]
    assert header == ["metric", "type", "labels", "from"]
    metrics = set()
    for name, kind, labels, source in rows:
        key = re.match(r"`(\w+)`", source)
        if key is not None and key.group(1) != "bus_type" and kind in ("gauge", "counter"):
            suffix = "_total" if kind == "counter" else ""
            assert code(name) == f"fraiseql_{key.group(1)}{suffix}", (name, source)
        label_names = tuple(sorted(code(label.strip()) for label in labels.split(",") if label))
        metrics.add((code(name), kind, label_names))
    return metrics


def scraped(manager: SubscriptionManager, into: dict[tuple[str, str], set[str]]) -> None:
    """Adds what a Prometheus registry with the manager's collector exposes to `into`:
    (sample name, type) -> label names but a histogram's `le` (a labelled family shows its
    labels once it has a sample)."""
    registry = CollectorRegistry()
    registry.register(PrometheusCollector(manager))
    for family in registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        labels = into.setdefault((family.name + suffix, family.type), set())
        labels |= {label for sample in family.samples for label in sample.labels} - {"le"}


@pytest.mark.anyio
async def test_metrics_page_lists_every_key_and_prometheus_metric() -> None:
    exposed: dict[tuple[str, str], set[str]] = {}
    app, manager = protocol_app(counters.fields, None)
    async with running_server(app) as address:
        async with ws_client(address) as client:
            assert (await client.init())["type"] == "connection_ack"
            await client.subscribe("1", COUNTER)
            await until(lambda: manager.get_metrics()["subscribers"] == 1)
            await manager.publish("counter", {"n": 1})
            await client.receive()
        await until(lambda: manager.get_metrics()["connections_closed"] != {})
        keys = set(manager.get_metrics())
        assert keys == documented_keys("memory")
        executor_keys = set(manager.executor.get_metrics())
        assert executor_keys == keys - {"subscribers", "connections_closed", "limited"}
        assert executor_keys == stub_metrics(required_only=True)
        scraped(manager, exposed)
    for bus, config in (
        ("Redis", EventBusConfig.redis(REDIS_URL, consumer_group="test-reference")),
        ("PostgreSQL", EventBusConfig.postgresql(POSTGRES_URL, channel_prefix="test_reference")),
    ):
        with_bus = SubscriptionManager(config, subscriptions=counters.fields)
        await with_bus.start()
        try:
            assert set(with_bus.get_metrics()) == documented_keys(bus), bus
            assert set(with_bus.executor.get_metrics()) <= stub_metrics(required_only=False)
            scraped(with_bus, exposed)
        finally:
            await with_bus.stop()
    found = {(name, kind, tuple(sorted(labels))) for (name, kind), labels in exposed.items()}
    assert found == documented_prometheus()


def stub_metrics(*, required_only: bool) -> set[str]:
    """The keys of the `Metrics` TypedDict in the core's stub (stubtest does not check a
    TypedDict against the dict the binary returns)."""
    stub = ast.parse((ROOT / "rust-core" / "fraiseql_core_rs.pyi").read_text())
    (metrics,) = [n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "Metrics"]
    return {
        field.target.id
        for field in metrics.body
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)
        if not (required_only and "NotRequired" in ast.unparse(field.annotation))
    }


# ----- the Rust core -------------------------------------------------------------------------


def test_core_page_includes_its_programs() -> None:
    assert included(REFERENCE / "core.md") == {"core/first.py", "core/drain.py", "core/adopt.py"}


def test_first_core_example_produces_its_frame(capsys: pytest.CaptureFixture[str]) -> None:
    example = fresh_module("docs/examples/core/first.py")  # it asserts the frame itself
    assert json.loads(example.frame)["payload"] == {"data": {"users": {"id": "123"}}}
    printed = ast.literal_eval(capsys.readouterr().out.strip())
    assert printed["events_delivered"] == 1 and printed["frames_sent"] == 1


@pytest.mark.anyio
async def test_drain_example_streams_frames_to_a_websocket() -> None:
    example = fresh_module("docs/examples/core/drain.py")
    executor = example.executor
    async with serve(example.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", proxy=None) as ws:
            await until(lambda: executor.get_metrics()["active_subscriptions"] == 1)
            for n in range(3):
                executor.publish_event("tick", "ticks", {"n": n, "hidden": "not selected"})
            received = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
            assert received == [
                {"id": "1", "type": "next", "payload": {"data": {"ticks": {"n": n}}}}
                for n in range(3)
            ]
        await until(lambda: executor.get_metrics()["active_connections"] == 0)


def test_overflow_policies_do_what_the_page_says() -> None:
    for policy in ("lag", "drop_oldest"):
        executor = PySubscriptionExecutor()
        wakes: list[int] = []
        executor.open_connection(
            "c", lambda wakes=wakes: wakes.append(1), max_queue=2, overflow_policy=policy
        )
        executor.register_subscription("c", "s", TICKS)
        for n in range(3):
            executor.publish_event("tick", "ticks", {"n": n})
        assert wakes == [1], "on_frames: once, when the queue became non-empty"
        frames = [json.loads(text) for text in executor.drain("c")]
        metrics = executor.get_metrics()
        if policy == "lag":
            assert [f["payload"]["data"]["ticks"]["n"] for f in frames[:2]] == [0, 1]
            assert frames[2]["type"] == "error"
            assert frames[2]["payload"][0]["extensions"]["code"] == "EVENTS_LAGGED"
            assert not executor.is_active("s")
        else:
            assert [f["payload"]["data"]["ticks"]["n"] for f in frames] == [1, 2]
            assert executor.is_active("s") and metrics["frames_dropped"] == 1
        assert metrics["queue_overflows"] == 1
        executor.publish_event("tick", "ticks", {"n": 9})
        assert len(wakes) == (1 if policy == "lag" else 2), "drain re-arms on_frames"


@pytest.mark.anyio
async def test_publish_event_async_waits_for_async_resolvers() -> None:
    executor = PySubscriptionExecutor()

    async def resolver(event: Any, variables: Any, context: Any) -> dict[str, int]:
        await asyncio.sleep(0.05)
        return {"n": event.data["n"] * 2}

    executor.register_subscription("c", "s", TICKS, resolver=resolver)
    assert await executor.publish_event_async("tick", "ticks", {"n": 21}) == 1
    assert json.loads(executor.drain("c")[0])["payload"] == {"data": {"ticks": {"n": 42}}}


def test_core_limits_on_its_page() -> None:
    executor = PySubscriptionExecutor()
    executor.register_subscription("c", "s", "subscription { v }")
    executor.publish_event("e", "v", 2**100)
    assert json.loads(executor.drain("c")[0])["payload"]["data"]["v"] == 2**100
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            executor.publish_event("e", "v", value)
    deep: Any = 1
    for _ in range(128):
        deep = [deep]
    with pytest.raises(ValueError, match="127"):
        executor.publish_event("e", "v", deep)
    nested = "subscription { " + "a { " * 64 + "b" + " }" * 65
    with pytest.raises(ValueError):
        executor.register_subscription("c", "deep", nested)
    with pytest.raises(PermissionError):
        executor.register_subscription(
            "c", "other", "subscription { v }", variables={"userId": "bob"}, user_id="ann"
        )


@pytest.mark.anyio
async def test_adopt_example_serves_graphql_transport_ws_from_the_core() -> None:
    example = fresh_module("docs/examples/core/adopt.py")
    executor = example.executor
    listener = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    server = asyncio.create_task(example.serve(listener))
    try:
        async with ws_client(address) as client:
            assert await client.init() == {"type": "connection_ack"}
            await client.subscribe("1", TICKS)
            await until(lambda: executor.get_metrics()["active_subscriptions"] == 1)
            assert executor.get_metrics()["native_sockets"] == 1
            executor.publish_event("tick", "ticks", {"n": 7})
            frame = await client.receive()
            assert frame == {"id": "1", "type": "next", "payload": {"data": {"ticks": {"n": 7}}}}
            await client.send({"type": "ping"})
            assert await client.receive() == {"type": "pong"}
            await client.subscribe("2", "subscription { ticks { ")
            refused = await client.receive()
            assert refused["id"] == "2" and refused["type"] == "error"
            await client.send({"type": "complete", "id": "1"})
            await until(lambda: executor.get_metrics()["active_subscriptions"] == 0)
            await client.send({"type": "bogus"})
            assert await client.closed_with() == (4400, "Unexpected message 'bogus'")
        metrics = lambda: executor.get_metrics()  # noqa: E731
        await until(lambda: metrics()["native_sockets"] == 0)
        await until(lambda: metrics()["active_connections"] == 0)
        async with ws_client(address) as client:
            assert (await client.init())["type"] == "connection_ack"
            try:  # the core may close before the whole message has been written
                await client.ws.send("x" * ((1 << 20) + 1))
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1009
            else:
                assert (await client.closed_with())[0] == 1009
        async with ws_client(address) as client:
            await client.subscribe("1", TICKS)
            assert await client.closed_with() == (4401, "Unauthorized")
        async with ws_client(address, subprotocols=[]) as client:
            assert await client.closed_with() == (4406, "Subprotocol not acceptable")
        await until(lambda: metrics()["active_connections"] == 0)
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
        listener.close()


# ----- benchmarks ------------------------------------------------------------------------------


class Tables(HTMLParser):
    """The rows (cell texts) and image sources of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, ...]] = []
        self.images: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(tuple(self._row))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def markdown_rows(path: Path) -> list[tuple[str, ...]]:
    """The table rows of a results file, as their cells read once rendered."""
    return [
        tuple(re.sub(r"\*\*|`", "", cell) for cell in cells(line))
        for line in path.read_text().splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def test_benchmarks_page_shows_the_current_results(built_site: Path) -> None:
    assert included(DOCS / "benchmarks.md") == {
        f"benchmarks/results/{name}" for name in ("suite.md", "bus.md", "resume.md")
    }
    page = built_site / "benchmarks" / "index.html"
    html = Tables()
    html.feed(page.read_text())
    suite = markdown_rows(RESULTS / "suite.md")
    assert suite[1] in html.rows, "the first row of suite.md's first table"
    for results in ("suite.md", "bus.md", "resume.md"):
        missing = [row for row in markdown_rows(RESULTS / results) if row not in html.rows]
        assert not missing, (results, missing[:3])
    plots = re.findall(r"!\[[^]]*\]\(([^)]+)\)", (RESULTS / "suite.md").read_text())
    assert plots and len(html.images) == len(plots)
    for plot, src in zip(plots, html.images, strict=True):
        served = (page.parent / src).resolve()
        assert served.read_bytes() == (RESULTS / plot).read_bytes(), src
    assert not (built_site / "hooks.py").exists(), "the hook is not published"


def bash_lines(page: Path) -> list[str]:
    """The commands of the page's ```bash blocks (comments dropped, continuations joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), re.DOTALL)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip()]


def test_benchmark_commands_run(tmp_path: Path) -> None:
    """The quick suite and the rerender commands, as the page writes them (into tmp_path):
    the rerender of suite.json gives suite.md as it is, so the page's tables are the data's.
    (`scripts/bench` and full runs take minutes of a machine of their own: not run here.)"""
    commands = bash_lines(DOCS / "benchmarks.md")
    quick = next(c for c in commands if "suite.py --quick" in c)
    rerender = next(c for c in commands if "--rerender" in c)
    for command, out in ((quick, tmp_path / "quick"), (rerender, tmp_path / "report")):
        argv = [arg.replace("/tmp/bench", str(out)).replace("/tmp/report", str(out))
                for arg in shlex.split(command)]  # fmt: skip
        argv[0] = str(ROOT / argv[0])
        completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    quick_rows = markdown_rows(tmp_path / "quick" / "suite.md")
    assert any(row[0] == "fraiseql-fastapi" and row[-1] == "yes" for row in quick_rows)
    assert (tmp_path / "quick" / "fanout_100x1000.png").is_file()
    report = tmp_path / "report"
    assert (report / "suite.md").read_text() == (RESULTS / "suite.md").read_text()
    for plot in RESULTS.glob("*.png"):
        assert (report / plot.name).is_file(), plot.name


# ----- close codes and error codes -----------------------------------------------------------

CODES = ROOT / "docs" / "reference" / "codes.md"


def test_codes_page_lists_every_close_code_and_error_code_sent() -> None:
    """Every close code of `CloseCode` (but 1006, which only a client reports) and every
    `extensions.code` the package or the core writes is in the page's tables."""
    from fraiseql_fastapi.http_abstraction import CloseCode

    page = CODES.read_text()
    closes = {int(code) for code in re.findall(r"^\| (\d{4}) \|", page, re.M)}
    assert closes == {int(code) for code in CloseCode} - {1006}
    errors = set(re.findall(r"`([A-Z_]{4,})`", page.split("## GraphQL error codes")[1]))
    written: set[str] = set()
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "rust-core" / "src").rglob("*.rs")]
    for source in sources:
        if source.name != "tests.rs":
            text = source.read_text()
            written |= set(re.findall(r'"code"[^"\n]{0,40}"([A-Z_]+)"', text))
            written |= set(re.findall(r'pub const \w+: &str = "([A-Z_]+)"', text))
    assert "RESUME_GAP" in written and "EVENTS_LAGGED" in written  # the patterns find the core's
    assert errors == written
