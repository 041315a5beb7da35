"""The operations guides run as written: docs/guides/prometheus-and-logs.md (the example app's
/metrics scraped over HTTP after a subscription, its events and a refusal; its logging
configuration with uvicorn, the bus's password masked), docs/guides/graphiql.md (the page of
the example app, self-hosted and in production; the page in headless Chromium) and
docs/guides/deployment.md (the page's nginx configuration in front of the example app: a
graphql-transport-ws subscription and an SSE stream through it, on both socket paths; the
read timeout against the server's pings; the forwarded client address; `uvicorn --workers`
on a Redis bus, shut down with SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from example_modules import fresh_module
from helpers import (
    COUNTER,
    ROOT,
    counters,
    end,
    fenced,
    free_port,
    protocol_app,
    running_server,
    until,
    ws_client,
)

from fraiseql_fastapi.graphiql import ASSETS, STYLESHEET

pytestmark = pytest.mark.anyio

DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
GUIDES = DOCS / "guides"
NODE_MODULES = ROOT / "tests" / "js" / "node_modules"
REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
ROOM = "subscription ($room: String!) { messagePosted(roomId: $room) { id text } }"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def wait_for_http(url: str, timeout: float = 20.0) -> None:
    """Until `url` answers something other than a proxy's 502/504."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(url)).status_code not in (502, 503, 504):
                    return
            assert time.monotonic() < deadline, f"{url} did not answer within {timeout} s"
            await asyncio.sleep(0.05)


# --- Prometheus and logs -------------------------------------------------------------------

PROMETHEUS = GUIDES / "prometheus-and-logs.md"
#: A document 23 levels deep (the default limit is 20).
DEEP = "{ __schema { types { " + "ofType { " * 20 + "name" + " }" * 20 + " } } }"


async def test_metrics_endpoint_serves_the_lines_the_page_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    example = fresh_module("docs/examples/observability/app.py")
    page = PROMETHEUS.read_text()
    assert '--8<-- "observability/scrape.txt"' in page
    expected = (EXAMPLES / "observability" / "scrape.txt").read_text().splitlines()
    async with (
        running_server(example.app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
    ):
        async with ws_client(address) as client:
            assert await client.init() == {"type": "connection_ack"}
            await client.subscribe("1", ROOM, {"room": "lobby"})
            await until(lambda: example.manager.get_metrics()["subscribers"] == 1)
            good = {"id": "1", "room_id": "lobby", "text": "hi"}
            assert (await http.post("/rooms/lobby/events", json=good)).json() == {"delivered": 1}
            assert (await client.receive())["payload"] == {
                "data": {"messagePosted": {"id": "1", "text": "hi"}}
            }
            # The second event has no `text`: its resolver fails.
            await http.post("/rooms/lobby/events", json={"id": "2", "room_id": "lobby"})
            [error] = (await client.receive())["payload"]["errors"]
            assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
            deep = await http.post("/graphql", json={"query": DEEP})
            assert deep.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"
        await until(lambda: example.manager.get_metrics()["connections_closed"].get(1000) == 1)
        scrape = await http.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=")
    lines = scrape.text.splitlines()
    for line in expected:
        assert line in lines, f"{line!r} not in the scrape:\n{scrape.text}"
    # Every limit has its series from the start; the page names a few.
    for limit in ("query_fields", "subscribe_rate", "connections_per_user"):
        assert f'fraiseql_limited_total{{limit="{limit}"}} 0.0' in lines
    assert "fraiseql_active_connections 0.0" in lines
    assert not any(line.startswith("fraiseql_bus_connected") for line in lines), "memory bus"
    buckets = [line for line in lines if line.startswith("fraiseql_delivery_seconds_bucket")]
    assert buckets[0].startswith('fraiseql_delivery_seconds_bucket{le="0.0001"}')  # 0.1 ms
    assert buckets[-2].startswith('fraiseql_delivery_seconds_bucket{le="10.0"}')  # to 10 s


async def test_collector_in_an_own_registry_serves_both_kinds_of_metrics() -> None:
    example = fresh_module("docs/examples/observability/own_registry.py")
    async with (
        running_server(example.app) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
        ws_client(address) as client,
    ):
        await client.init()
        await client.subscribe("1", "subscription { orderPlaced }")
        await until(lambda: example.manager.get_metrics()["subscribers"] == 1)
        example.orders.inc()
        lines = (await http.get("/metrics")).text.splitlines()
    assert "shop_orders_total 1.0" in lines
    assert "fraiseql_active_subscriptions 1.0" in lines
    assert "fraiseql_subscriptions_registered_total 1.0" in lines


def test_metrics_module_names_the_extra_when_prometheus_client_is_missing() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "try:\n    import fraiseql_fastapi.metrics\n"
        "except ImportError as e:\n    print(e)\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert 'pip install "fraiseql-fastapi[prometheus]"' in shown.stdout
    assert 'pip install "fraiseql-fastapi[prometheus]"' in fenced(
        PROMETHEUS, "## Prometheus", "bash"
    )


async def test_the_logging_config_shows_the_records_the_page_shows(tmp_path: Path) -> None:
    """The page's command (uvicorn --log-config logging.json, the PostgreSQL bus with a
    password in its URL): the bus's connect and stop at INFO with the password masked, the
    failing resolver at ERROR with its exception; then Ctrl+C."""
    command = fenced(PROMETHEUS, "### Wiring the logging configuration", "bash").strip()
    assignment, *argv = command.split()
    name, url = assignment.split("=", 1)
    assert name == "DATABASE_URL" and argv[:2] == ["uvicorn", "app:app"], command
    password = url.split(":")[2].split("@")[0]
    port = free_port()
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", *argv, "--host", "127.0.0.1", "--port", str(port)],
            cwd=EXAMPLES / "observability",
            env={**os.environ, name: url},
            stderr=stderr,
        )
    address = f"127.0.0.1:{port}"
    room = uuid.uuid4().hex
    try:
        await wait_for_http(f"http://{address}/metrics")
        async with (
            httpx.AsyncClient(base_url=f"http://{address}") as http,
            ws_client(address) as client,
        ):
            await client.init()
            await client.subscribe("1", ROOM, {"room": room})
            for n in range(200):  # until the bus listens for the room
                good = {"id": f"probe-{n}", "room_id": room, "text": "hi"}
                await http.post(f"/rooms/{room}/events", json=good)
                with contextlib.suppress(asyncio.TimeoutError):
                    await client.receive(timeout=0.1)
                    break
            await http.post(f"/rooms/{room}/events", json={"id": "bad", "room_id": room})
            while "errors" not in (await client.receive())["payload"]:
                pass
            process.send_signal(signal.SIGINT)  # Ctrl+C
            assert await client.closed_with(timeout=10) == (1001, "Server shutting down")
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert password not in text
    lines = text.splitlines()
    position = 0
    shown = fenced(PROMETHEUS, "### Wiring the logging configuration", "text").splitlines()
    for expected in shown:  # each line of the page's excerpt, in order (times cut)
        found = [i for i, line in enumerate(lines) if line.endswith(expected) and i >= position]
        assert found, f"{expected!r} not logged in order:\n{text}"
        position = found[0] + 1


# --- GraphiQL -------------------------------------------------------------------------------

GRAPHIQL = GUIDES / "graphiql.md"


def test_the_npm_line_installs_the_versions_the_page_pins() -> None:
    line = fenced(GRAPHIQL, "## Self-hosting the assets", "bash").strip()
    assert line.startswith("npm install ")
    packages = dict(spec.rsplit("@", 1) for spec in line.split()[2:])
    assert packages == {asset.package: asset.version for asset in (*ASSETS, STYLESHEET)}
    for asset in (*ASSETS, STYLESHEET):
        # tests/js/node_modules is such an install (scripts/install): the layout is the URL's.
        assert (NODE_MODULES / asset.package / asset.path).is_file(), asset
        assert f"/static/vendor/{asset.package}/{asset.path}" in GRAPHIQL.read_text()
    text = " ".join(GRAPHIQL.read_text().split())
    assert "GraphiQL 3.8.3, React 18.3.1 and the graphql-ws client 5.16.2" in text


@pytest.fixture
def graphiql_example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The page's app, run where `node_modules` is (tests/js, as after the npm line)."""
    monkeypatch.chdir(NODE_MODULES.parent)
    return fresh_module("docs/examples/graphiql/app.py")


async def test_the_self_hosted_page_loads_the_mounted_assets(graphiql_example: Any) -> None:
    async with (
        running_server(graphiql_example.app) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        page = await http.get("/graphql", headers={"accept": BROWSER_ACCEPT})
        head = await http.head("/graphql", headers={"accept": "text/html"})
        curl = await http.get("/graphql", headers={"accept": "*/*"})
        urls = re.findall(r'(?:src|href)="(/static/vendor/[^"]+)"', page.text)
        assets = [await http.get(url) for url in urls]
    assert page.status_code == 200 and page.headers["vary"] == "Accept"
    assert "<title>GraphiQL</title>" in page.text
    assert "integrity=" not in page.text  # a self-hosted copy is not pinned
    assert urls == [
        "/static/vendor/graphiql/graphiql.min.css",
        *(f"/static/vendor/{asset.package}/{asset.path}" for asset in ASSETS),
    ]
    assert all(asset.status_code == 200 and asset.content for asset in assets)
    assert (head.status_code, head.content) == (200, b"")
    assert (curl.status_code, curl.headers["allow"]) == (405, "GET, POST")


async def test_the_default_page_pins_unpkg_assets_with_integrity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same app without graphiql_assets_url: the default.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    example = fresh_module("docs/examples/observability/app.py")
    async with (
        running_server(example.app) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        page = (await http.get("/graphql", headers={"accept": "text/html"})).text
    for asset in (*ASSETS, STYLESHEET):
        url = f"https://unpkg.com/{asset.package}@{asset.version}/{asset.path}"
        assert f'"{url}" integrity="{asset.integrity}" crossorigin="anonymous"' in page
        assert asset.integrity.startswith("sha384-")


async def test_production_has_no_page_and_no_introspection() -> None:
    example = fresh_module("docs/examples/graphiql/production.py")
    async with (
        running_server(example.app) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        page = await http.get("/graphql", headers={"accept": BROWSER_ACCEPT})
        schema = await http.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})
        typename = await http.post("/graphql", json={"query": "{ __typename }"})
    assert (page.status_code, page.headers["allow"]) == (405, "POST")
    assert "<html" not in page.text
    assert schema.status_code == 400 and "introspection" in schema.text.lower()
    assert typename.json() == {"data": {"__typename": "Query"}}


@pytest.mark.skipif(
    shutil.which("node") is None or not Path("/usr/bin/chromium").exists(),
    reason="node and chromium (scripts/install) are needed for the browser check",
)
async def test_the_page_in_a_browser_shows_the_schema_and_uses_the_headers_pane(
    graphiql_example: Any,
) -> None:
    from test_graphiql import browser_check  # the existing browser driver

    query = 'subscription { messagePosted(roomId: "lobby") { id text } }'
    async with running_server(graphiql_example.app) as address:
        base = f"http://{address}"
        post = {
            "url": f"{base}/rooms/lobby/messages",
            "body": {"id": "7", "room_id": "lobby", "text": "hello"},
            "marker": "hello",
        }
        seen = await browser_check(
            {
                "page": f"{base}/graphql",
                "docs": "Subscription",
                "runs": [
                    {"query": query},  # no token: refused
                    {"headers": '{"token": "ann"}', "query": query, "publish": [post]},
                ],
            }
        )
    assert seen["fields"] == ["messagePosted"]
    refused, accepted = seen["runs"]
    [error] = json.loads(refused["responses"][0])["errors"]
    assert error["message"] == "Socket closed with event 4403 Forbidden"
    assert error["message"] in GRAPHIQL.read_text()
    [message] = accepted["responses"]
    assert json.loads(message) == {"data": {"messagePosted": {"id": "7", "text": "hello"}}}
    assert seen["failedRequests"] == []


# --- Deployment behind a proxy --------------------------------------------------------------

DEPLOYMENT = GUIDES / "deployment.md"
NGINX_SITE = EXAMPLES / "deployment" / "nginx.conf"


def render_nginx(tmp_path: Path, upstream: str, port: int, read_timeout: str | None) -> Path:
    """A complete configuration around the page's (its upstream and port replaced)."""
    site = NGINX_SITE.read_text()
    for original in ("server 127.0.0.1:8000;", "listen 80;", "proxy_read_timeout 60s;"):
        assert site.count(original) == 1, original
    site = site.replace("server 127.0.0.1:8000;", f"server {upstream};")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    if read_timeout is not None:
        site = site.replace("proxy_read_timeout 60s;", f"proxy_read_timeout {read_timeout};")
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "site.conf").write_text(site)
    temp = "\n".join(
        f"    {kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = tmp_path / "nginx.conf"
    config.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"""daemon off;
worker_processes 1;
pid {tmp_path / "nginx.pid"};
error_log {tmp_path / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp_path / "access.log"};
{temp}
    include {tmp_path / "site.conf"};
}}
"""
    )
    return config


@contextlib.asynccontextmanager
async def nginx(
    tmp_path: Path, upstream: str, read_timeout: str | None = None
) -> AsyncIterator[str]:
    """A real nginx with the page's configuration in front of `upstream`; yields its
    "127.0.0.1:PORT"."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        pytest.fail("nginx is not installed: run scripts/install (it installs nginx)")
    port = free_port()
    config = render_nginx(tmp_path, upstream, port, read_timeout)
    process = subprocess.Popen(
        [binary, "-p", str(tmp_path), "-c", str(config), "-e", str(tmp_path / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, f"nginx exited: {process.stderr.read().decode()}"  # type: ignore[union-attr]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            assert time.monotonic() < deadline, "nginx did not listen"
            await asyncio.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        end(process)


async def sse_record(lines: AsyncIterator[str]) -> tuple[str, Any]:
    """The next record (event, data) of an event stream; comment lines are skipped."""
    event, data = "", None
    async for line in lines:
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
        elif line == "" and event:
            return event, data
    raise AssertionError("the stream ended")


def room_message(message_id: str) -> dict[str, Any]:
    return {
        "id": "1",
        "type": "next",
        "payload": {"data": {"messagePosted": {"id": message_id, "text": "hi"}}},
    }


@pytest.mark.parametrize("native", [False, True], ids=["python-path", "native-path"])
async def test_websocket_and_sse_through_the_pages_nginx_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    example = fresh_module("docs/examples/deployment/app.py")
    room = uuid.uuid4().hex
    variables = {"room": room}
    async with (
        running_server(example.app, native=native) as upstream,
        nginx(tmp_path, upstream) as proxy,
        ws_client(proxy) as client,
        httpx.AsyncClient(base_url=f"http://{proxy}", timeout=10) as http,
    ):
        assert await client.init() == {"type": "connection_ack"}
        await client.subscribe("1", ROOM, variables)
        params = {"query": ROOM, "variables": json.dumps(variables)}
        headers = {"accept": "text/event-stream"}
        async with http.stream("GET", "/graphql", params=params, headers=headers) as sse:
            assert sse.status_code == 200
            assert sse.headers["content-type"].startswith("text/event-stream")
            lines = sse.aiter_lines()
            await until(lambda: example.manager.get_metrics()["subscribers"] == 2)
            # Until the bus listens for the room: probes, which both must see.
            for n in range(200):
                message = {"id": f"probe-{n}", "room_id": room, "text": "hi"}
                await http.post(f"/rooms/{room}/messages", json=message)
                with contextlib.suppress(asyncio.TimeoutError):
                    await client.receive(timeout=0.1)
                    break
            last_probe = f"probe-{n}"
            while (await sse_record(lines))[1]["data"]["messagePosted"]["id"] != last_probe:
                pass
            for message_id in ("a", "b", "c"):
                started = time.monotonic()
                message = {"id": message_id, "room_id": room, "text": "hi"}
                await http.post(f"/rooms/{room}/messages", json=message)
                assert await client.receive(timeout=1) == room_message(message_id)
                record = await asyncio.wait_for(sse_record(lines), 1)
                assert record == (
                    "next",
                    {"data": {"messagePosted": {"id": message_id, "text": "hi"}}},
                )
                assert time.monotonic() - started < 1.0, "not buffered by the proxy"
        assert native is (example.manager.get_metrics()["native_sockets"] == 1)


async def test_the_forwarded_client_is_the_one_nginx_saw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    example = fresh_module("docs/examples/deployment/app.py")
    # The client connects from 127.0.0.5; nginx reaches uvicorn from 127.0.0.1 (trusted).
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.5")
    async with (
        running_server(example.app) as upstream,
        nginx(tmp_path, upstream) as proxy,
        httpx.AsyncClient(base_url=f"http://{proxy}", transport=transport) as http,
    ):
        seen = (await http.get("/client")).json()
        spoofed = (await http.get("/client", headers={"x-forwarded-for": "203.0.113.9"})).json()
    assert seen == {"host": "127.0.0.5", "scheme": "http"}
    assert spoofed == seen, "the client's own X-Forwarded-For is not believed"


async def test_the_read_timeout_must_be_above_the_ping_interval(tmp_path: Path) -> None:
    """nginx closes a proxied connection silent for `proxy_read_timeout`: the server's pings
    (every `ping_interval`) keep it open; with none, it is cut."""
    app, manager = protocol_app([*counters.fields], None, ping_interval=0.5)
    async with (
        running_server(app) as upstream,
        nginx(tmp_path / "pinged", upstream, read_timeout="2s") as proxy,
        ws_client(proxy) as client,
    ):
        await client.init()
        await client.subscribe("1", COUNTER)
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:  # longer than the read timeout, answering pings
            with contextlib.suppress(asyncio.TimeoutError):
                message = await client.receive(timeout=0.1)
                assert message == {"type": "ping"}
                await client.send({"type": "pong"})
        await manager.publish("counter", {"n": 1})
        assert (await client.receive())["payload"] == {"data": {"counter": 1}}
    silent, _ = protocol_app([*counters.fields], None, ping_interval=None)
    async with (
        running_server(silent) as upstream,
        nginx(tmp_path / "silent", upstream, read_timeout="2s") as proxy,
        ws_client(proxy) as client,
    ):
        await client.init()
        started = time.monotonic()
        code, _ = await client.closed_with(timeout=10)
        assert code != 1000 and 1.5 < time.monotonic() - started < 5, "cut by the proxy"


@contextlib.contextmanager
def uvicorn_process(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", *argv], cwd=EXAMPLES / "deployment", env={**os.environ, **env}
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
async def test_workers_on_a_bus_behind_nginx_deliver_to_all_and_shut_down_gracefully(
    server: str, tmp_path: Path
) -> None:
    lines = fenced(DEPLOYMENT, "## Several workers", "bash").strip().splitlines()
    (command,) = [line for line in lines if line.split()[1] == server]
    assignment, *argv = command.split()
    name, url = assignment.split("=", 1)
    assert (name, url) == ("REDIS_URL", REDIS) and argv[:2] == [server, "app:app"], command
    assert "--workers" in argv
    port = free_port()
    if server == "uvicorn":
        argv = [*argv[: argv.index("--port")], "--port", str(port), "--host", "127.0.0.1"]
    else:
        argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    argv[argv.index("--workers") + 1] = "2"
    room = uuid.uuid4().hex
    with uvicorn_process([*argv, "--log-level", "warning"], {name: url}) as process:
        async with nginx(tmp_path, f"127.0.0.1:{port}") as proxy:
            await wait_for_http(f"http://{proxy}/client")
            async with contextlib.AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(ws_client(proxy)) for _ in range(6)]
                for client in clients:
                    assert await client.init() == {"type": "connection_ack"}
                    await client.subscribe("1", ROOM, {"room": room})
                async with httpx.AsyncClient(base_url=f"http://{proxy}", timeout=10) as http:
                    waiting = set(range(len(clients)))
                    for n in range(300):  # probes until every worker's bus listens
                        message = {"id": f"probe-{n}", "room_id": room, "text": "hi"}
                        await http.post(f"/rooms/{room}/messages", json=message)
                        for i in list(waiting):
                            with contextlib.suppress(asyncio.TimeoutError):
                                await clients[i].receive(timeout=0.02)
                                waiting.discard(i)
                        if not waiting:
                            break
                    assert not waiting, "some subscribers never got an event"
                    for message_id in ("m1", "m2"):
                        message = {"id": message_id, "room_id": room, "text": "hi"}
                        await http.post(f"/rooms/{room}/messages", json=message)
                for client in clients:  # every one gets both, once, in order
                    got = []
                    while len(got) < 2:
                        frame = await client.receive(timeout=5)
                        got += (
                            [frame]
                            if not frame["payload"]["data"]["messagePosted"]["id"].startswith(
                                "probe"
                            )
                            else []
                        )
                    assert got == [room_message("m1"), room_message("m2")]
                process.send_signal(signal.SIGTERM)
                for client in clients:
                    assert await client.receive(timeout=10) == {"id": "1", "type": "complete"}
                    assert await client.closed_with(timeout=10) == (1001, "Server shutting down")
            process.wait(timeout=15)
