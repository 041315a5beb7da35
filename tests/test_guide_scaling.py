"""The guides "Scaling out with Redis or PostgreSQL" and "Publishing from SQL triggers" run as
written: their files under docs/examples/scaling/ and docs/examples/sql/, and their bash
commands, against the machine's Redis and PostgreSQL (database `test`) and the TLS servers of
`tls_servers.py`.

- scaling/chat.py runs in two uvicorn processes (and as `--workers 2`) on each bus, over TLS on
  each, and an event published through either reaches the subscribers of both, once; its
  /health answers 503 while the bus is down, and what was published meanwhile arrives once
  the bus is back; the publish queue holds 10,000 events, then `publish()` raises.
- sql/messages_trigger.sql, loaded with the page's psql command after the page's install.py,
  publishes each committed row to its tenant's subscribers of the room, and nothing of a
  transaction or savepoint that rolls back, nor before the commit; the page's own
  `fraiseql_publish` call reaches its tenant only; a trigger fails until the function exists;
  large rows arrive whole; events are pruned after `retention`.

PostgreSQL tests work in a schema of their own (`search_path` in the connection string),
dropped afterwards, so the bus's table and functions are theirs alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from example_modules import fresh_module
from helpers import (
    BUSES,
    ROOT,
    Client,
    blocks,
    end,
    free_port,
    running_server,
    until,
    wait_for_redis,
    ws_client,
)
from tls_servers import TlsPostgres, TlsRedis

from fraiseql_fastapi import EventBusConfig, SubscriptionManager

EXAMPLES = ROOT / "docs" / "examples"
SCALING = EXAMPLES / "scaling"
SQL = EXAMPLES / "sql"
SCALING_PAGE = ROOT / "docs" / "guides" / "scaling-out.md"
SQL_PAGE = ROOT / "docs" / "guides" / "sql-triggers.md"
REDIS = BUSES["redis"]
POSTGRES = BUSES["postgresql"]
MESSAGES = "subscription ($room: String!) { messagePosted(roomId: $room) { id text } }"
AUTHORED = "subscription ($room: String!) { messagePosted(roomId: $room) { author text } }"


def page_command(page: Path, word: str) -> str:
    """The one line of the page's bash blocks that contains `word`."""
    lines = [line for block in blocks(page, "bash") for line in block.splitlines() if word in line]
    assert len(lines) == 1, lines
    return lines[0]


#: The rooms the current test made (their streams on the shared Redis are removed after it).
ROOMS: list[str] = []


def room() -> str:
    name = f"r{uuid.uuid4().hex[:10]}"
    ROOMS.append(name)
    return name


@pytest.fixture(autouse=True)
def forget_rooms() -> Iterator[None]:
    """Removes the streams the chat example's Redis bus kept for this test's rooms."""
    yield
    if ROOMS:
        client = redis.Redis.from_url(REDIS)
        client.delete(*(f"fraiseql:chat:s:room:{name}" for name in ROOMS))
        client.close()
        ROOMS.clear()


# --- PostgreSQL schemas of the tests' own -----------------------------------------------------


@contextlib.contextmanager
def fresh_schema(server: str = POSTGRES) -> Iterator[tuple[str, str]]:
    """A new schema in the database `server` names; yields (schema, a connection string whose
    search_path is that schema). Dropped, with everything in it, afterwards."""
    schema = f"docs_{uuid.uuid4().hex[:10]}"
    separator = "&" if "?" in server else "?"
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}".encode())
        try:
            yield schema, f"{server}{separator}options=-csearch_path%3D{schema}"
        finally:
            db.execute(f"DROP SCHEMA {schema} CASCADE".encode())


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    with fresh_schema() as found:
        yield found


def value(url: str, sql: str, params: tuple[object, ...] = ()) -> Any:
    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute(sql.encode(), params).fetchone()
        assert row is not None
        return row[0]


# --- the chat example in processes of its own -------------------------------------------------


@contextlib.contextmanager
def chat_server(
    bus: str, ca_file: str | None = None, workers: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`uvicorn chat:app` of docs/examples/scaling on a free port with CHAT_BUS=`bus` (and
    CHAT_BUS_CA_FILE, `--workers`); yields its address and process."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "chat:app", "--app-dir", str(SCALING),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        *(["--workers", str(workers)] if workers else []),
    ]  # fmt: skip
    env = {**os.environ, "CHAT_BUS": bus}
    env.pop("CHAT_BUS_CA_FILE", None)
    if ca_file:
        env["CHAT_BUS_CA_FILE"] = ca_file
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        yield f"127.0.0.1:{port}", process
    finally:
        end(process, timeout=15)
        assert process.stderr is not None
        process.stderr.close()


def fresh_http() -> httpx.AsyncClient:
    """An HTTP client that opens a new connection per request (so that `--workers` spread
    them)."""
    return httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_keepalive_connections=0))


async def health(http: httpx.AsyncClient, address: str) -> httpx.Response:
    return await http.get(f"http://{address}/health")


async def healthy(
    http: httpx.AsyncClient, address: str, process: subprocess.Popen[bytes]
) -> dict[str, Any]:
    """Waits until the server answers /health with 200; its body."""
    for _ in range(400):
        assert process.poll() is None, "the server exited"
        with contextlib.suppress(httpx.TransportError):
            response = await health(http, address)
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} did not become healthy")


@contextlib.asynccontextmanager
async def subscriber(address: str, room_id: str) -> AsyncIterator[Client]:
    async with ws_client(address) as client:
        assert (await client.init())["type"] == "connection_ack"
        await client.subscribe("1", MESSAGES, {"room": room_id})
        yield client


async def subscribed(http: httpx.AsyncClient, address: str, count: int) -> None:
    """Waits until the server at `address` has `count` subscriptions, then a little more: the
    bus listens to a channel shortly after its first subscription."""
    for _ in range(400):
        if (await health(http, address)).json()["subscribers"] == count:
            await asyncio.sleep(0.3)
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{address}: not {count} subscribers")


async def post(http: httpx.AsyncClient, address: str, room_id: str, n: int) -> int:
    """Posts message `n` to the room through `address`; the pid that served it."""
    message = {"id": str(n), "room_id": room_id, "text": f"message {n}"}
    response = await http.post(f"http://{address}/rooms/{room_id}/messages", json=message)
    response.raise_for_status()
    pid: int = response.json()["pid"]
    return pid


def next_of(n: int) -> dict[str, Any]:
    """The frame a subscriber gets for message `n`."""
    data = {"messagePosted": {"id": str(n), "text": f"message {n}"}}
    return {"id": "1", "type": "next", "payload": {"data": data}}


async def nothing_more(*clients: Client) -> None:
    for client in clients:
        with pytest.raises(asyncio.TimeoutError):
            await client.receive(timeout=0.4)


async def check_two_processes_share(bus: str, ca_file: str | None = None) -> None:
    """Two chat processes on `bus`, a subscriber on each: a message posted through either
    reaches both subscribers, once."""
    room_id = room()
    with chat_server(bus, ca_file) as (one, p1), chat_server(bus, ca_file) as (two, p2):
        async with fresh_http() as http:
            assert (await healthy(http, one, p1))["bus_connected"] is True
            assert (await healthy(http, two, p2))["bus_connected"] is True
            async with subscriber(one, room_id) as c1, subscriber(two, room_id) as c2:
                await subscribed(http, one, 1)
                await subscribed(http, two, 1)
                for n, address in enumerate((one, two, one)):
                    await post(http, address, room_id, n)
                    for client in (c1, c2):
                        assert await client.receive(timeout=10) == next_of(n)
                # The publisher's own process got its events from the bus: once each.
                await nothing_more(c1, c2)
            for address in (one, two):
                body = (await health(http, address)).json()
                assert body["bus_last_error"] is None and body["bus_publish_queue"] == 0


# --- Scaling out ------------------------------------------------------------------------------


def test_the_page_runs_its_files_and_commands() -> None:
    text = SCALING_PAGE.read_text()
    assert '--8<-- "scaling/chat.py:bus"' in text and '--8<-- "scaling/chat.py:app"' in text
    assert "uvicorn chat:app --workers 4" in page_command(SCALING_PAGE, "redis://127.0.0.1")


def test_bus_config_follows_the_url() -> None:
    chat = fresh_module("docs/examples/scaling/chat.py")
    redis_bus = chat.bus_config(REDIS)
    assert (redis_bus.bus_type, redis_bus.consumer_group) == ("redis", "chat")
    pg_bus = chat.bus_config(POSTGRES)
    assert (pg_bus.bus_type, pg_bus.channel_prefix, pg_bus.retention) == (
        "postgresql",
        "chat",
        3600.0,
    )
    assert chat.bus_config("memory").bus_type == "memory"
    # The defaults the page's table states.
    assert EventBusConfig.redis(REDIS).consumer_group == "fraiseql-subscriptions"
    assert EventBusConfig.postgresql(POSTGRES).channel_prefix == "fraiseql"
    hours = EventBusConfig.postgresql(POSTGRES, retention=timedelta(hours=6))
    assert hours.retention == 6 * 3600
    # Invalid input fails when the configuration is made.
    with pytest.raises(ValueError, match="cannot read CA file"):
        chat.bus_config("rediss://localhost:6380/0", ca_file="/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="must be 1 to 40 characters"):
        EventBusConfig.postgresql(POSTGRES, channel_prefix="9chat")
    with pytest.raises(ValueError, match="'allow' is not supported"):
        EventBusConfig.postgresql(f"{POSTGRES}?sslmode=allow")


@pytest.mark.anyio
async def test_two_processes_share_redis() -> None:
    await check_two_processes_share(REDIS)


@pytest.mark.anyio
async def test_two_processes_share_postgresql() -> None:
    with fresh_schema() as (schema, url):
        await check_two_processes_share(url)
        # channel_prefix="chat" named the table and the function.
        assert value(POSTGRES, "SELECT to_regclass(%s)::text", (f"{schema}.chat_events",))
        procedure = f"{schema}.chat_publish(text,text,jsonb,text,text)"
        assert value(POSTGRES, "SELECT to_regprocedure(%s)::text", (procedure,))
        assert value(POSTGRES, "SELECT to_regclass(%s)", (f"{schema}.fraiseql_events",)) is None


@pytest.mark.anyio
async def test_two_processes_share_redis_over_tls(redis_tls: TlsRedis) -> None:
    await check_two_processes_share(redis_tls.url(), ca_file=str(redis_tls.certs.ca))


@pytest.mark.anyio
async def test_two_processes_share_postgresql_over_tls(postgres_tls: TlsPostgres) -> None:
    server = postgres_tls.url(query=f"?sslmode=verify-full&sslrootcert={postgres_tls.certs.ca}")
    with fresh_schema(server) as (_, url):
        await check_two_processes_share(url)


def test_an_unverified_server_fails_the_start(redis_tls: TlsRedis) -> None:
    """Without the CA file, the test CA is unknown to the system's roots: the process never
    serves, and says which server and why (password masked)."""
    with chat_server(redis_tls.url()) as (_, process):
        assert process.wait(timeout=30) != 0
        assert process.stderr is not None
        stderr = process.stderr.read().decode()
    assert f"Redis at rediss://:***@localhost:{redis_tls.port}/0" in stderr, stderr
    assert "UnknownIssuer" in stderr, stderr
    assert redis_tls.password not in stderr


@pytest.mark.anyio
async def test_uvicorn_workers_share_the_bus() -> None:
    """`--workers 2`: messages posted through both workers reach every subscriber, whichever
    worker serves it, once each and in order."""
    room_id = room()
    with chat_server(REDIS, workers=2) as (address, process):
        async with fresh_http() as http:
            await healthy(http, address, process)
            async with contextlib.AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(subscriber(address, room_id)) for _ in range(6)
                ]
                # Each answer is one worker's count: wait until the workers' counts add up.
                counts: dict[int, int] = {}
                for _ in range(400):
                    body = (await health(http, address)).json()
                    counts[body["pid"]] = body["subscribers"]
                    if sum(counts.values()) == 6:
                        break
                    await asyncio.sleep(0.02)
                assert sum(counts.values()) == 6, counts
                await asyncio.sleep(0.3)
                pids: set[int] = set()
                n = 0
                while len(pids) < 2 or n < 4:
                    assert n < 60, f"every post went to one worker: {pids}"
                    pids.add(await post(http, address, room_id, n))
                    for client in clients:
                        assert await client.receive(timeout=10) == next_of(n)
                    n += 1
                await nothing_more(*clients)


@contextlib.contextmanager
def private_redis(port: int) -> Iterator[redis.Redis]:
    """A redis-server of this test's own on `port` (no persistence): stopped on exit."""
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=port)
        try:
            wait_for_redis(client, process)
            yield client
        finally:
            client.close()
            end(process)


@pytest.mark.anyio
async def test_health_and_catching_up_after_an_outage() -> None:
    port, room_id = free_port(), room()
    bus = f"redis://127.0.0.1:{port}/0"
    outage = contextlib.ExitStack()
    outage.enter_context(private_redis(port))
    try:
        with chat_server(bus) as (address, process):
            async with fresh_http() as http:
                await healthy(http, address, process)
                async with subscriber(address, room_id) as client:
                    await subscribed(http, address, 1)
                    await post(http, address, room_id, 0)
                    assert await client.receive(timeout=10) == next_of(0)
                    outage.close()  # Redis goes away
                    for _ in range(400):
                        down = await health(http, address)
                        if down.status_code == 503:
                            break
                        await asyncio.sleep(0.02)
                    assert down.status_code == 503
                    assert down.json()["bus_connected"] is False
                    assert down.json()["bus_last_error"]
                    for n in (1, 2, 3):  # publish() still returns: the events wait in the queue
                        await post(http, address, room_id, n)
                    await nothing_more(client)
                    outage.enter_context(private_redis(port))  # back, on the same address
                    await healthy(http, address, process)
                    for n in (1, 2, 3):
                        assert await client.receive(timeout=10) == next_of(n)
                    await nothing_more(client)
    finally:
        outage.close()


@pytest.mark.anyio
async def test_the_publish_queue_holds_10000_events_then_publish_raises() -> None:
    chat = fresh_module("docs/examples/scaling/chat.py")
    port = free_port()
    outage = contextlib.ExitStack()
    outage.enter_context(private_redis(port))
    manager: SubscriptionManager = chat.make_manager(f"redis://127.0.0.1:{port}/0")
    await manager.start()
    try:
        outage.close()
        published = 0
        message = {"id": "1", "room_id": "x", "text": "t"}
        with pytest.raises(ConnectionError):
            while published < 20_000:
                assert await manager.publish("room:x", message, event_type="messagePosted") == 0
                published += 1
        # The queue, plus the one batch (at most 512) the publisher holds while it retries.
        assert 10_000 <= published <= 10_000 + 512, published
        metrics = manager.get_metrics()
        assert metrics["bus_publish_queue"] == 10_000
        assert metrics["bus_connected"] is False
    finally:
        outage.close()
        await manager.stop()


# --- Publishing from SQL triggers -------------------------------------------------------------


def run_page_command(word: str, database_url: str) -> None:
    """Runs the page's bash line containing `word` in docs/examples/sql, with DATABASE_URL."""
    command = page_command(SQL_PAGE, word)
    assert "$DATABASE_URL" in command, command
    env = {**os.environ, "DATABASE_URL": database_url, "PATH": f"{Path(sys.executable).parent}:"
           f"{os.environ['PATH']}"}  # fmt: skip
    completed = subprocess.run(
        ["bash", "-c", command], cwd=SQL, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr


def sql_example() -> str:
    """The page's ```sql block that is not an include."""
    blocks = re.findall(r"```sql\n(.*?)```", SQL_PAGE.read_text(), re.DOTALL)
    (block,) = [block for block in blocks if not block.startswith("--8<--")]
    return block


def install_trigger(url: str) -> None:
    """The page's steps: install.py (twice: it is idempotent), then the trigger with psql."""
    run_page_command("install.py", url)
    run_page_command("install.py", url)
    run_page_command("psql", url)


def test_the_sql_page_includes_its_files() -> None:
    text = SQL_PAGE.read_text()
    assert '```sql\n--8<-- "sql/messages_trigger.sql"\n```' in text
    assert '--8<-- "sql/app.py:app"' in text and '--8<-- "sql/install.py"' in text


def test_install_creates_the_function_in_the_current_schema(
    pg_schema: tuple[str, str],
) -> None:
    schema, url = pg_schema
    procedure = f"{schema}.fraiseql_publish(text,text,jsonb,text,text)"
    assert value(POSTGRES, "SELECT to_regprocedure(%s)::text", (procedure,)) is None
    run_page_command("install.py", url)
    assert value(POSTGRES, "SELECT to_regprocedure(%s)::text", (procedure,))
    with pytest.raises(psycopg.errors.RaiseException, match="must not be null"):
        value(url, "SELECT fraiseql_publish(NULL, 'x', '{}')")
    event_id = value(url, "SELECT fraiseql_publish('room:x', 'messagePosted', '{}')")
    assert isinstance(event_id, int)


async def insert(conn: psycopg.AsyncConnection[Any], tenant: str, author: str, text: str) -> None:
    await conn.execute(
        b"INSERT INTO messages (tenant_id, room_id, author, text) VALUES (%s, 'lobby', %s, %s)",
        (tenant, author, text),
    )


def authored(author: str, text: str) -> dict[str, Any]:
    data = {"messagePosted": {"author": author, "text": text}}
    return {"id": "1", "type": "next", "payload": {"data": data}}


@contextlib.asynccontextmanager
async def trigger_app(url: str) -> AsyncIterator[tuple[Client, Client, Any]]:
    """sql/app.py on the schema's bus; an acme and a globex subscriber of the lobby."""
    example = fresh_module("docs/examples/sql/app.py")
    app = example.create_app(url)
    manager = app.state.manager
    async with (
        running_server(app) as address,
        ws_client(address) as ann,
        ws_client(address) as bob,
    ):
        assert (await ann.init({"user": "ann", "tenant": "acme"}))["type"] == "connection_ack"
        assert (await bob.init({"user": "bob", "tenant": "globex"}))["type"] == "connection_ack"
        await ann.subscribe("1", AUTHORED, {"room": "lobby"})
        await bob.subscribe("1", AUTHORED, {"room": "lobby"})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        await until(lambda: manager.get_metrics()["bus_channels"] == 1)
        yield ann, bob, manager


@pytest.mark.anyio
async def test_the_trigger_publishes_only_what_commits(pg_schema: tuple[str, str]) -> None:
    _, url = pg_schema
    install_trigger(url)
    async with (
        trigger_app(url) as (ann, bob, _),
        await psycopg.AsyncConnection.connect(url) as conn,
    ):
        # Not before the commit.
        await insert(conn, "acme", "ann", "hi")
        await nothing_more(ann)
        await conn.commit()
        assert await ann.receive(timeout=10) == authored("ann", "hi")
        # Never when it rolls back, or its savepoint does.
        async with conn.transaction():
            await insert(conn, "acme", "ann", "rolled back")
            raise psycopg.Rollback()
        async with conn.transaction():
            await insert(conn, "acme", "ann", "kept")
            async with conn.transaction():
                await insert(conn, "acme", "ann", "in a rolled-back savepoint")
                raise psycopg.Rollback()
        assert await ann.receive(timeout=10) == authored("ann", "kept")
        # Another tenant's row: globex's subscriber only.
        async with conn.transaction():
            await insert(conn, "globex", "bob", "hello")
        assert await bob.receive(timeout=10) == authored("bob", "hello")
        await nothing_more(ann, bob)
        # The page's own call, from any transaction: for acme only.
        await conn.execute(sql_example().encode())
        await nothing_more(ann)
        await conn.commit()
        assert await ann.receive(timeout=10) == authored("carl", "from SQL")
        await nothing_more(ann, bob)


@pytest.mark.anyio
async def test_large_rows_arrive_whole(pg_schema: tuple[str, str]) -> None:
    _, url = pg_schema
    install_trigger(url)
    big = "x" * 300_000 + "é" * 50_000  # far over NOTIFY's 8000 bytes
    async with (
        trigger_app(url) as (ann, _, _),
        await psycopg.AsyncConnection.connect(url, autocommit=True) as conn,
    ):
        await insert(conn, "acme", "ann", big)
        assert await ann.receive(timeout=10) == authored("ann", big)


@pytest.mark.anyio
async def test_the_trigger_fails_until_the_function_exists(pg_schema: tuple[str, str]) -> None:
    _, url = pg_schema
    run_page_command("psql", url)
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction, match="fraiseql_publish"):
            conn.execute(
                b"INSERT INTO messages (tenant_id, room_id, author, text) "
                b"VALUES ('acme', 'lobby', 'ann', 'too early')"
            )
        assert conn.execute(b"SELECT count(*) FROM messages").fetchone() == (0,)


@pytest.mark.anyio
async def test_events_are_pruned_after_the_retention(pg_schema: tuple[str, str]) -> None:
    schema, url = pg_schema
    example = fresh_module("docs/examples/sql/app.py")
    bus = EventBusConfig.postgresql(url, retention=timedelta(seconds=2))
    manager = SubscriptionManager(bus, subscriptions=example.registry.fields)
    await manager.start()
    try:
        value(url, "SELECT fraiseql_publish('room:lobby', 'messagePosted', '{}')")
        count = f"SELECT count(*) FROM {schema}.fraiseql_events"
        await asyncio.sleep(0.5)
        assert value(POSTGRES, count) == 1, "kept for the retention"
        deadline = time.monotonic() + 30
        while value(POSTGRES, count):
            assert time.monotonic() < deadline, "not pruned"
            await asyncio.sleep(0.2)
    finally:
        await manager.stop()
