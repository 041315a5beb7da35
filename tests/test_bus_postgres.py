"""The PostgreSQL bus against the real PostgreSQL on 127.0.0.1:5432 (database `test`): delivery
across executors (as separate processes would be), exactly once and in order; payloads beyond
NOTIFY's limit; publishing from SQL and from a trigger, only when the transaction commits;
nothing lost or duplicated when a bus connection is killed; the listened channels following
the subscriptions; clear errors at start.

Each test uses channel names and an application_name of its own, so tests never see each
other's events and a test kills only its own bus connections."""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from fraiseql_core_rs import PyEventBusConfig, PySubscriptionExecutor

SERVER = "postgresql://postgres@127.0.0.1:5432/test"
QUERY = "subscription { ticks { id } }"


@pytest.fixture
def tag() -> str:
    """A name of the test's own: channel names and the bus's application_name."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db() -> Iterator[psycopg.Connection]:
    with psycopg.connect(SERVER, autocommit=True) as conn:
        yield conn


def dsn(app: str, extra: str = "") -> str:
    return f"{SERVER}?application_name={app}{extra}"


def executor(app: str, extra: str = "") -> PySubscriptionExecutor:
    ex = PySubscriptionExecutor(PyEventBusConfig.postgresql(dsn(app, extra)), max_queue=100_000)
    ex.start_bus()
    return ex


def pump(
    ex: PySubscriptionExecutor, until: int, sub: str = "s", timeout: float = 20.0
) -> list[str]:
    """Processes bus events until `until` frames of `sub` arrived (or the timeout passed);
    returns their tick ids."""
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    fd = ex.bus_fd
    assert fd is not None
    while True:
        ex.process_bus_events()
        while (frame := ex.next_event(sub)) is not None:
            ids.append(json.loads(frame)["payload"]["data"]["ticks"]["id"])
        remaining = deadline - time.monotonic()
        if len(ids) >= until or remaining <= 0:
            return ids
        select.select([fd], [], [], min(remaining, 0.05))


def publish(ex: PySubscriptionExecutor, channel: str, tick: str) -> None:
    """Publishes, waiting while the bounded publish queue is full (it raises then)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            ex.publish_event("tick", channel, {"id": tick})
            return
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def one(db: psycopg.Connection, sql: str, params: tuple[object, ...] = ()) -> Any:
    """The single value of a one-row query."""
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def kill(db: psycopg.Connection, ex: PySubscriptionExecutor, application_name: str) -> None:
    """Terminates the backend of one of `ex`'s bus connections (by its application_name) and
    waits until the bus has noticed and reconnected."""
    reconnects = ex.get_metrics()["bus_reconnects"]
    killed = one(
        db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
        (application_name,),
    )
    assert killed == 1
    wait_for(lambda: ex.get_metrics()["bus_reconnects"] > reconnects)


def test_delivery_across_executors_in_order_once(tag: str) -> None:
    a, b = executor(tag + "a"), executor(tag + "b")
    ch = f"{tag}:ticks"
    try:
        a.register_subscription("c", "s", QUERY, channels=[ch])
        b.register_subscription("c", "s", QUERY, channels=[ch])
        for i in range(2000):
            publish(b, ch, str(i))
        expected = [str(i) for i in range(2000)]
        # The publisher's own executor gets its events from the bus too: once each.
        assert pump(a, 2000) == expected
        assert pump(b, 2000) == expected
        assert pump(a, 1, timeout=0.3) == [] and pump(b, 1, timeout=0.3) == []
        # Both executors publishing: each one's events keep their order, nothing is missing.
        for i in range(1000):
            publish(a if i % 2 else b, ch, str(i))
        ids = pump(a, 1000)
        assert sorted(ids, key=int) == [str(i) for i in range(1000)]
        numbers = [int(i) for i in ids]
        assert [n for n in numbers if n % 2] == list(range(1, 1000, 2))
        assert [n for n in numbers if not n % 2] == list(range(0, 1000, 2))
        assert sorted(pump(b, 1000), key=int) == sorted(ids, key=int)
        metrics = a.get_metrics()
        assert metrics["bus_connected"] is True
        assert metrics["bus_received"] == 3000
        assert metrics["bus_published"] == 500
        assert metrics["bus_publish_queue"] == 0
        assert metrics["bus_last_error"] is None
    finally:
        a.stop_bus()
        b.stop_bus()


def test_publish_right_after_subscribing_arrives(tag: str) -> None:
    """listen() reaches the bus asynchronously: an event published just after a subscription
    (here by another process) must still reach it."""
    a, b = executor(tag + "a"), executor(tag + "b")
    try:
        for i in range(50):
            a.register_subscription("c", f"s{i}", QUERY, channels=[f"{tag}:{i}"])
            publish(b, f"{tag}:{i}", str(i))
            publish(a, f"{tag}:{i}", f"own {i}")
        for i in range(50):
            # Two publishers: no order between them, but both arrive, once.
            assert sorted(pump(a, 2, sub=f"s{i}")) == sorted([str(i), f"own {i}"])
    finally:
        a.stop_bus()
        b.stop_bus()


def test_large_payloads(tag: str) -> None:
    a, b = executor(tag + "a"), executor(tag + "b")
    ch = f"{tag}:big"
    try:
        a.register_subscription("c", "s", QUERY, channels=[ch])
        big = [f"{i}:" + "x" * 100_000 for i in range(3)]
        for tick in big:
            publish(b, ch, tick)
        publish(b, ch, "é" * 50_000)  # multi-byte text survives the round trip
        assert pump(a, 4) == [*big, "é" * 50_000]
    finally:
        a.stop_bus()
        b.stop_bus()


def test_sql_publish_only_when_committed(tag: str, db: psycopg.Connection) -> None:
    a = executor(tag)
    ch = f"{tag}:sql"
    try:
        a.register_subscription("c", "s", QUERY, channels=[ch])
        wait_for(lambda: a.get_metrics()["bus_channels"] == 1)
        with db.transaction():
            db.execute("SELECT fraiseql_publish(%s, 'tick', '{\"id\": \"rolled back\"}')", (ch,))
            db.execute("SELECT pg_notify('fraiseql_events', '')")
            raise psycopg.Rollback()
        with db.transaction():
            db.execute("SELECT fraiseql_publish(%s, 'tick', '{\"id\": \"committed\"}')", (ch,))
        assert pump(a, 2, timeout=1) == ["committed"]
        # An event for a tenant and user: not for this subscription, which has neither.
        event_id = one(
            db, "SELECT fraiseql_publish(%s, 'tick', '{\"id\": \"theirs\"}', 't1', 'u1')", (ch,)
        )
        wait_for(lambda: a.get_metrics()["bus_received"] == 2)
        assert pump(a, 1, timeout=0.3) == []
        # The row is the same wire form Event::to_wire writes.
        payload = one(db, "SELECT payload FROM fraiseql_events WHERE id = %s", (event_id,))
        wire = json.loads(payload)
        assert wire["event_type"] == "tick" and wire["data"] == {"id": "theirs"}
        assert wire["tenant_id"] == "t1" and wire["user_id"] == "u1"
        assert abs(wire["ts"] - time.time()) < 60
        with pytest.raises(psycopg.errors.RaiseException, match="must not be null"):
            db.execute("SELECT fraiseql_publish(NULL, 'tick', '{}')")
    finally:
        a.stop_bus()


def test_a_long_transaction_does_not_hold_back_others_and_is_not_lost(
    tag: str, db: psycopg.Connection
) -> None:
    """The outbox pitfall: the long transaction's row has the smaller id but becomes visible
    after a newer one was delivered."""
    a = executor(tag)
    ch = f"{tag}:order"
    try:
        a.register_subscription("c", "s", QUERY, channels=[ch])
        wait_for(lambda: a.get_metrics()["bus_channels"] == 1)
        with psycopg.connect(SERVER) as long_tx:
            long_tx.execute("SELECT fraiseql_publish(%s, 'tick', '{\"id\": \"slow\"}')", (ch,))
            db.execute("SELECT fraiseql_publish(%s, 'tick', '{\"id\": \"fast\"}')", (ch,))
            assert pump(a, 1) == ["fast"]
            long_tx.commit()
        assert pump(a, 1) == ["slow"]
        assert pump(a, 1, timeout=0.3) == []
    finally:
        a.stop_bus()


def test_trigger_publishes_on_insert(tag: str, db: psycopg.Connection) -> None:
    a = executor(tag)
    ch = f"{tag}:orders"
    table = f"orders_{tag}"
    db.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, item text NOT NULL)")
    db.execute(
        f"""CREATE FUNCTION {table}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM fraiseql_publish('{ch}', 'created', jsonb_build_object('id', NEW.item));
            RETURN NEW;
        END $$"""
    )
    db.execute(
        f"CREATE TRIGGER {table}_published AFTER INSERT ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_notify()"
    )
    try:
        a.register_subscription("c", "s", QUERY, channels=[ch])
        wait_for(lambda: a.get_metrics()["bus_channels"] == 1)
        db.execute(f"INSERT INTO {table} (item) VALUES ('first')")
        with db.transaction():
            db.execute(f"INSERT INTO {table} (item) VALUES ('rolled back')")
            raise psycopg.Rollback()
        with db.transaction():
            db.execute(f"INSERT INTO {table} (item) VALUES ('second'), ('third')")
        assert pump(a, 4, timeout=1) == ["first", "second", "third"]
    finally:
        a.stop_bus()
        db.execute(f"DROP TABLE {table}")
        db.execute(f"DROP FUNCTION {table}_notify()")


def publish_while_killing(
    a: PySubscriptionExecutor,
    b: PySubscriptionExecutor,
    ch: str,
    kill_at: tuple[int, ...],
    kill: Callable[[], None],
) -> None:
    """B publishes 10,000 events to A's subscription on `ch`, calling `kill` at the given
    events; A must receive each of them once, in order."""
    count = 10_000
    a.register_subscription("c", "s", QUERY, channels=[ch])
    wait_for(lambda: a.get_metrics()["bus_channels"] == 1)
    received: list[str] = []
    for i in range(count):
        publish(b, ch, str(i))
        if i in kill_at:
            kill()
        if i % 500 == 0:
            received += pump(a, 0, timeout=0)
    received += pump(a, count - len(received), timeout=30)
    assert received == [str(i) for i in range(count)]
    assert pump(a, 1, timeout=0.3) == []


def test_nothing_lost_when_the_listening_connection_is_killed(
    tag: str, db: psycopg.Connection
) -> None:
    a, b = executor(tag + "a"), executor(tag + "b")
    try:
        publish_while_killing(
            a, b, f"{tag}:kill", (2000, 6000), lambda: kill(db, a, f"{tag}a-bus-listen")
        )
        metrics = a.get_metrics()
        assert metrics["bus_reconnects"] >= 2
        assert metrics["bus_connected"] is True
        assert metrics["bus_received"] == 10_000
        assert "terminating connection" in (metrics["bus_last_error"] or "")
    finally:
        a.stop_bus()
        b.stop_bus()


def test_nothing_lost_or_doubled_when_the_publishing_connection_is_killed(
    tag: str, db: psycopg.Connection
) -> None:
    a, b = executor(tag + "a"), executor(tag + "b")
    try:
        publish_while_killing(
            a, b, f"{tag}:kill", (1000, 4000, 7000), lambda: kill(db, b, f"{tag}b-bus-publish")
        )
        wait_for(lambda: b.get_metrics()["bus_publish_queue"] == 0)
        metrics = b.get_metrics()
        assert metrics["bus_reconnects"] >= 3
        assert metrics["bus_published"] == 10_000
    finally:
        a.stop_bus()
        b.stop_bus()


def test_listened_channels_follow_subscriptions(tag: str) -> None:
    a, b = executor(tag + "a"), executor(tag + "b")
    try:
        for i in range(2000):
            a.register_subscription("c", f"s{i}", QUERY, channels=[f"{tag}:room:{i}"])
        wait_for(lambda: a.get_metrics()["bus_channels"] == 2000)
        publish(b, f"{tag}:room:1999", "in")
        assert pump(a, 1, sub="s1999") == ["in"]
        for i in range(2000):
            a.complete_subscription(f"s{i}")
        wait_for(lambda: a.get_metrics()["bus_channels"] == 0)
        # Not read any more: the listener does not even fetch them.
        received = a.get_metrics()["bus_received"]
        publish(b, f"{tag}:room:1999", "out")
        a.register_subscription("c", "probe", QUERY, channels=[f"{tag}:probe"])
        wait_for(lambda: a.get_metrics()["bus_channels"] == 1)
        publish(b, f"{tag}:probe", "probe")
        assert pump(a, 1, sub="probe") == ["probe"]
        assert a.get_metrics()["bus_received"] == received + 1
        a.complete_subscription("probe")
        wait_for(lambda: a.get_metrics()["bus_channels"] == 0)
        assert a.get_metrics()["active_subscriptions"] == 0
    finally:
        a.stop_bus()
        b.stop_bus()


def test_subscriptions_before_start_are_listened(tag: str) -> None:
    a = PySubscriptionExecutor(PyEventBusConfig.postgresql(dsn(tag + "a")))
    b = executor(tag + "b")
    try:
        a.register_subscription("c", "s", QUERY, channels=[f"{tag}:early"])
        a.start_bus()
        assert a.get_metrics()["bus_channels"] == 1
        publish(b, f"{tag}:early", "1")
        assert pump(a, 1) == ["1"]
    finally:
        a.stop_bus()
        b.stop_bus()


def test_search_path_keeps_applications_apart(tag: str, db: psycopg.Connection) -> None:
    schema = f"app_{tag}"
    db.execute(f"CREATE SCHEMA {schema}")
    other_app = executor(tag + "o", f"&options=-csearch_path%3D{schema}")
    a, b = executor(tag + "a"), executor(tag + "b")
    ch = f"{tag}:shared-name"
    try:
        exists = one(db, "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.fraiseql_events",))
        assert exists
        other_app.register_subscription("c", "s", QUERY, channels=[ch])
        a.register_subscription("c", "s", QUERY, channels=[ch])
        wait_for(lambda: other_app.get_metrics()["bus_channels"] == 1)
        wait_for(lambda: a.get_metrics()["bus_channels"] == 1)
        publish(b, ch, "public")
        publish(other_app, ch, "own schema")
        assert pump(a, 1) == ["public"]
        assert pump(other_app, 1) == ["own schema"]
        assert pump(a, 1, timeout=0.3) == [] and pump(other_app, 1, timeout=0.3) == []
    finally:
        for ex in (other_app, a, b):
            ex.stop_bus()
        db.execute(f"DROP SCHEMA {schema} CASCADE")


def test_stop_flushes_queued_publishes(tag: str) -> None:
    a, b = executor(tag + "a"), executor(tag + "b")
    ch = f"{tag}:stop"
    try:
        a.register_subscription("c", "s", QUERY, channels=[ch])
        wait_for(lambda: a.get_metrics()["bus_channels"] == 1)
        for i in range(500):
            publish(b, ch, str(i))
        b.stop_bus()
        assert pump(a, 500) == [str(i) for i in range(500)]
        assert b.get_metrics()["bus_connected"] is False
        with pytest.raises(RuntimeError, match="not started"):
            b.publish_event("tick", ch, {"id": "late"})
    finally:
        a.stop_bus()
        b.stop_bus()


@pytest.mark.parametrize(
    ("connection_string", "names"),
    [
        ("postgresql://postgres:hunter2@127.0.0.1:1/test", ["127.0.0.1:1", "refused"]),
        ("postgresql://postgres@127.0.0.1:5432/no_such_db_x", ["127.0.0.1:5432", "no_such_db_x"]),
        (
            "host=127.0.0.1 port=5432 user=no_such_role_x dbname=test",
            ["127.0.0.1:5432", "no_such_role_x"],
        ),
    ],
)
def test_bad_configuration_fails_at_start(connection_string: str, names: list[str]) -> None:
    ex = PySubscriptionExecutor(PyEventBusConfig.postgresql(connection_string))
    started = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        ex.start_bus()
    assert time.monotonic() - started < 7
    message = str(error.value)
    assert message.startswith("cannot connect to PostgreSQL at ")
    for name in names:
        assert name in message
    assert "hunter2" not in message
    with pytest.raises(RuntimeError, match="not started"):
        ex.publish_event("e", "ch", {})


def test_pruning_deletes_only_events_committed_before_the_retention(
    tag: str, db: psycopg.Connection
) -> None:
    """fraiseql_prune (which the bus runs about once a minute with a one-hour retention) judges
    age by commit, not by insertion: an event of a transaction that was still open when the
    horizon snapshot was taken survives. Run here in a schema of its own, with no retention."""
    schema = f"prune_{tag}"
    db.execute(f"CREATE SCHEMA {schema}")
    a = executor(tag, f"&options=-csearch_path%3D{schema}")
    ch = f"{tag}:prune"
    try:
        a.register_subscription("c", "s", QUERY, channels=[ch])
        wait_for(lambda: a.get_metrics()["bus_channels"] == 1)
        for i in range(3):
            publish(a, ch, str(i))
        assert pump(a, 3) == ["0", "1", "2"]
        with psycopg.connect(SERVER) as open_tx:
            open_tx.execute(
                f"SELECT {schema}.fraiseql_publish(%s, 'tick', '{{\"id\": \"late\"}}')", (ch,)
            )
            deleted = one(db, f"SELECT {schema}.fraiseql_prune('0 seconds')")
            assert deleted == 3
            open_tx.commit()
        assert pump(a, 1) == ["late"]
        # Committed after the horizon snapshot: kept, whatever its insertion time.
        deleted = one(db, f"SELECT {schema}.fraiseql_prune('0 seconds')")
        assert deleted == 0
        left = one(db, f"SELECT count(*) FROM {schema}.fraiseql_events")
        assert left == 1
    finally:
        a.stop_bus()
        db.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_server_that_never_answers_fails_at_start_within_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        ex = PySubscriptionExecutor(
            PyEventBusConfig.postgresql(f"postgresql://postgres@127.0.0.1:{port}/test")
        )
        started = time.monotonic()
        with pytest.raises(ConnectionError, match=rf"127\.0\.0\.1:{port}.*no answer within 5s"):
            ex.start_bus()
        assert 4 < time.monotonic() - started < 7


def test_channel_prefixes_keep_applications_apart(tag: str) -> None:
    config = PyEventBusConfig.postgresql(SERVER, channel_prefix="otherapp")
    assert config.channel_prefix == "otherapp"
    assert PyEventBusConfig.postgresql(SERVER).channel_prefix == "fraiseql"
    with pytest.raises(ValueError):
        PyEventBusConfig.postgresql(SERVER, channel_prefix="no spaces; drop table")

    def app(prefix: str) -> PySubscriptionExecutor:
        ex = PySubscriptionExecutor(
            PyEventBusConfig.postgresql(dsn(f"{tag}-{prefix}"), channel_prefix=prefix)
        )
        ex.start_bus()
        return ex

    mine, theirs, also_mine = app("fq_a"), app("fq_b"), app("fq_a")
    try:
        mine.register_subscription("c", "s", QUERY, channels=[f"{tag}-ch"])
        wait_for(lambda: mine.get_metrics()["bus_channels"] == 1)
        publish(theirs, f"{tag}-ch", "theirs")
        publish(also_mine, f"{tag}-ch", "mine")
        assert pump(mine, 2, timeout=3) == ["mine"]
    finally:
        for ex in (mine, theirs, also_mine):
            ex.stop_bus()


def test_retention_is_configurable(tag: str, db: psycopg.Connection) -> None:
    from datetime import timedelta

    def app(prefix: str, retention: float | timedelta) -> PySubscriptionExecutor:
        ex = PySubscriptionExecutor(
            PyEventBusConfig.postgresql(
                dsn(f"{tag}-{prefix}"), channel_prefix=prefix, retention=retention
            )
        )
        ex.start_bus()
        return ex

    short, long = app("fq_ret_short", 1.0), app("fq_ret_long", timedelta(hours=1))
    ch = f"{tag}-ch"

    def rows(prefix: str) -> int:
        return int(one(db, f"SELECT count(*) FROM {prefix}_events WHERE channel = %s", (ch,)))

    try:
        for i in range(5):
            publish(short, ch, str(i))
            publish(long, ch, str(i))
        wait_for(lambda: rows("fq_ret_short") == 5 and rows("fq_ret_long") == 5)
        # Pruned within a few seconds of the one-second retention; the hour keeps them.
        wait_for(lambda: rows("fq_ret_short") == 0, timeout=15)
        assert rows("fq_ret_long") == 5
    finally:
        short.stop_bus()
        long.stop_bus()


@pytest.mark.anyio
async def test_install_sql_leaves_a_manager_that_is_not_started_disconnected(
    db: psycopg.Connection, tag: str
) -> None:
    """A migration script's `install_sql()`: the table and function exist afterwards, and the
    bus is disconnected again (no threads or connections left behind)."""
    from fraiseql_fastapi import EventBusConfig, SubscriptionManager

    prefix = f"inst_{tag}"
    bus = EventBusConfig.postgresql(dsn(prefix), channel_prefix=prefix)
    manager = SubscriptionManager(bus, subscriptions=[])
    try:
        await manager.install_sql()
        assert one(db, "SELECT to_regclass(%s) IS NOT NULL", (f"{prefix}_events",))
        assert manager.get_metrics()["bus_connected"] is False
        sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        deadline = time.monotonic() + 5
        while one(db, sessions, (prefix,)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert one(db, sessions, (prefix,)) == 0
    finally:
        for table in ("events", "event_marks"):
            db.execute(f"DROP TABLE IF EXISTS {prefix}_{table} CASCADE")
        for function in ("publish", "prune"):
            db.execute(f"DROP FUNCTION IF EXISTS {prefix}_{function} CASCADE")
