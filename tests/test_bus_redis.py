"""The Redis bus against the real Redis on 127.0.0.1:6379: delivery across executors (as
separate processes would be), exactly once and in order, replay after the subscribing
connection is killed, the listener set following the subscriptions, and clear errors."""

from __future__ import annotations

import json
import select
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from helpers import free_port, wait_for_redis

from fraiseql_core_rs import PyEventBusConfig, PySubscriptionExecutor

URL = "redis://127.0.0.1:6379/0"
QUERY = "subscription { ticks { id } }"


@pytest.fixture
def group() -> Iterator[str]:
    """A consumer group of its own, so tests never see each other's keys; removed after."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(URL)
    for pattern in (f"fraiseql:{name}:*", f"fraiseql:{name}-other:*"):
        keys = list(client.scan_iter(pattern))
        if keys:
            client.delete(*keys)
    client.close()


@pytest.fixture
def server() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(URL)
    yield client
    client.close()


def executor(group: str) -> PySubscriptionExecutor:
    ex = PySubscriptionExecutor(
        PyEventBusConfig.redis(URL, consumer_group=group), max_queue=100_000
    )
    ex.start_bus()
    return ex


def pump(
    ex: PySubscriptionExecutor, until: int, sub: str = "s", timeout: float = 20.0
) -> list[str]:
    """Processes bus events until `until` frames of `sub` arrived; returns the tick ids."""
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    fd = ex.bus_fd
    assert fd is not None
    while len(ids) < until and time.monotonic() < deadline:
        select.select([fd], [], [], 0.05)
        ex.process_bus_events()
        while (frame := ex.next_event(sub)) is not None:
            ids.append(json.loads(frame)["payload"]["data"]["ticks"]["id"])
    return ids


def wait_listening(server: redis.Redis, group: str, channel: str, count: int = 1) -> None:
    name = f"fraiseql:{group}:p:{channel}"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if dict(server.pubsub_numsub(name)).get(name.encode(), 0) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"nobody listens on {name}")


def test_events_cross_executors_once_and_in_order(group: str, server: redis.Redis) -> None:
    a, b = executor(group), executor(group)
    try:
        a.register_subscription("c", "s", QUERY, channels=["ch"])
        # Subscribed already, though the bus may not listen yet: it must still arrive.
        a.publish_event("e", "ch", {"id": "first"})
        wait_listening(server, group, "ch")
        for i in range(1000):
            (a if i % 2 else b).publish_event("tick", "ch", {"id": str(i)})
        assert a.publish_event("tick", "ch", {"id": "x"}) == 0  # delivered via the bus
        ids = pump(a, 1002)
        assert sorted(ids) == sorted([str(i) for i in range(1000)] + ["first", "x"])
        assert ids[0] == "first"
        # Each publisher's events keep their order (the two interleave as Redis received them).
        numbers = [int(i) for i in ids if i.isdigit()]
        assert [n for n in numbers if n % 2] == list(range(1, 1000, 2))
        assert [n for n in numbers if not n % 2] == list(range(0, 1000, 2))
        metrics = a.get_metrics()
        assert metrics["bus_connected"] is True
        assert metrics["bus_received"] + metrics["bus_replayed"] == 1002
    finally:
        a.stop_bus()
        b.stop_bus()


def test_one_publisher_is_delivered_in_its_order(group: str, server: redis.Redis) -> None:
    a, b = executor(group), executor(group)
    try:
        a.register_subscription("c", "s", QUERY, channels=["ch"])
        wait_listening(server, group, "ch")
        for i in range(2000):
            b.publish_event("tick", "ch", {"id": str(i)})
        assert pump(a, 2000) == [str(i) for i in range(2000)]
    finally:
        a.stop_bus()
        b.stop_bus()


def publish_while_killing(
    group: str, server: redis.Redis, kill_at: tuple[int, ...], kill: Callable[[], None]
) -> tuple[PySubscriptionExecutor, PySubscriptionExecutor, list[str]]:
    """B publishes 10,000 events to A's subscription, calling `kill` at the given events;
    returns (A, B, the tick ids A received)."""
    a, b = executor(group), executor(group)
    count = 10_000
    try:
        a.register_subscription("c", "s", QUERY, channels=["ch"])
        wait_listening(server, group, "ch")
        received: list[str] = []
        for i in range(count):
            b.publish_event("tick", "ch", {"id": str(i)})
            if i in kill_at:
                kill()
            if i % 500 == 0:
                received += pump(a, 0, timeout=0)
        received += pump(a, count - len(received), timeout=30)
        return a, b, received
    finally:
        a.stop_bus()
        b.stop_bus()


def test_nothing_lost_when_the_subscribing_connection_is_killed(
    group: str, server: redis.Redis
) -> None:
    def kill_listener() -> None:
        wait_listening(server, group, "ch")  # (re)connected: kill it mid-stream
        assert server.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1

    a, _, received = publish_while_killing(group, server, (2000, 6000), kill_listener)
    assert received == [str(i) for i in range(10_000)]
    metrics = a.get_metrics()
    assert metrics["bus_reconnects"] >= 2
    assert metrics["bus_replayed"] >= 1


def test_nothing_lost_or_doubled_when_the_publishing_connection_is_killed(
    group: str, server: redis.Redis
) -> None:
    def kill_commands() -> None:
        # Every command connection but ours, mid-batch: the publisher sends its batch again,
        # and the events Redis had applied must not be appended twice.
        server.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

    _, b, received = publish_while_killing(group, server, (1500, 4000, 7500), kill_commands)
    assert received == [str(i) for i in range(10_000)]
    assert b.get_metrics()["bus_published"] == 10_000


def test_listeners_follow_subscriptions(group: str, server: redis.Redis) -> None:
    a = executor(group)
    try:
        for i in range(2000):
            a.register_subscription("c", f"s{i}", QUERY, channels=[f"room:{i}"])
        wait_listening(server, group, "room:1999")
        assert len(server.pubsub_channels(f"fraiseql:{group}:p:*")) == 2000
        for i in range(2000):
            a.complete_subscription(f"s{i}")
        a.get_metrics()  # any call forwards pending channel changes
        deadline = time.monotonic() + 5
        while server.pubsub_channels(f"fraiseql:{group}:p:*") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.pubsub_channels(f"fraiseql:{group}:p:*") == []
        assert a.get_metrics()["channels"] == 0
    finally:
        a.stop_bus()


def test_unreachable_server_fails_at_start() -> None:
    ex = PySubscriptionExecutor(PyEventBusConfig.redis("redis://:secret@127.0.0.1:6390/0"))
    with pytest.raises(ConnectionError, match=r"Redis at redis://:\*\*\*@127.0.0.1:6390/0"):
        ex.start_bus()
    with pytest.raises(RuntimeError, match="not started"):
        ex.publish_event("e", "ch", {})


def test_consumer_groups_keep_applications_apart(group: str, server: redis.Redis) -> None:
    a, other = executor(group), executor(group + "-other")
    try:
        a.register_subscription("c", "s", QUERY, channels=["ch"])
        wait_listening(server, group, "ch")
        other.publish_event("tick", "ch", {"id": "other app"})
        executor_b = executor(group)
        executor_b.publish_event("tick", "ch", {"id": "mine"})
        assert pump(a, 1) == ["mine"]
        executor_b.stop_bus()
    finally:
        a.stop_bus()
        other.stop_bus()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A Redis of the test's own on a free port, persisting to an append-only file so that a
    restart keeps the streams (as a production Redis would); yields (url, restart)."""
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(tmp_path),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--requirepass",
        "pw",
    ]
    process: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        process.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        client = redis.Redis(port=port, password="pw")
        wait_for_redis(client, process[-1])
        client.close()

    def restart() -> None:
        process[-1].terminate()
        process[-1].wait(timeout=10)
        start()

    start()
    try:
        yield f"redis://:pw@127.0.0.1:{port}/0", restart
    finally:
        process[-1].terminate()
        process[-1].wait(timeout=10)


def test_restart_within_retention_loses_nothing(
    own_redis: tuple[str, Callable[[], None]],
) -> None:
    url, restart = own_redis
    a = PySubscriptionExecutor(PyEventBusConfig.redis(url), max_queue=100_000)
    b = PySubscriptionExecutor(PyEventBusConfig.redis(url))
    a.start_bus()
    b.start_bus()
    try:
        a.register_subscription("c", "s", QUERY, channels=["ch"])
        time.sleep(0.3)
        received: list[str] = []
        for i in range(3000):
            if i == 1000:
                received += pump(a, 1000)
                restart()
            b.publish_event("tick", "ch", {"id": str(i)})  # queued while Redis is down
        received += pump(a, 3000 - len(received), timeout=30)
        assert received == [str(i) for i in range(3000)]
        assert a.get_metrics()["bus_reconnects"] >= 1
    finally:
        a.stop_bus()
        b.stop_bus()


def test_wrong_password_fails_at_start(own_redis: tuple[str, Callable[[], None]]) -> None:
    url, _ = own_redis
    bad = url.replace(":pw@", ":wrong@")
    ex = PySubscriptionExecutor(PyEventBusConfig.redis(bad))
    with pytest.raises(ConnectionError, match=r"Redis at redis://:\*\*\*@127\.0\.0\.1"):
        ex.start_bus()


def test_publishers_leave_expiring_keys_and_scripts_go_by_sha(
    own_redis: tuple[str, Callable[[], None]],
) -> None:
    url, _ = own_redis
    server = redis.Redis.from_url(url)  # a server of its own: its command counts are ours
    a, b = (PySubscriptionExecutor(PyEventBusConfig.redis(url, "g")) for _ in range(2))
    a.start_bus()
    b.start_bus()
    try:
        a.register_subscription("c", "s", QUERY, channels=["ch"])
        wait_listening(server, "g", "ch")
        for i in range(100):
            b.publish_event("tick", "ch", {"id": str(i)})
        assert pump(a, 100) == [str(i) for i in range(100)]
        # One key per publisher, expiring a day after its last publish: none is kept forever.
        keys = list(server.scan_iter("fraiseql:g:publisher:*"))
        assert len(keys) == 1
        assert 0 < server.pttl(keys[0]) <= 24 * 3600 * 1000
        assert not server.exists("fraiseql:g:publishers")
        # The script goes by its SHA: never EVAL with its text, and loaded again when flushed.
        commandstats = server.info("commandstats")
        assert "cmdstat_eval" not in commandstats
        assert commandstats["cmdstat_evalsha"]["calls"] >= 100
        server.script_flush()
        # A publisher whose key expired keeps publishing (its numbers go on).
        server.delete(*keys)
        for i in range(100, 200):
            b.publish_event("tick", "ch", {"id": str(i)})
        assert pump(a, 100) == [str(i) for i in range(100, 200)]
        assert b.get_metrics()["bus_published"] == 200
        assert "cmdstat_eval" not in server.info("commandstats")
    finally:
        a.stop_bus()
        b.stop_bus()
        server.close()


@pytest.mark.parametrize("trial", range(5))
def test_events_queued_at_stop_are_sent_before_it_returns(
    group: str, server: redis.Redis, trial: int
) -> None:
    """`stop_bus()` right after a burst of publishes (the manager's shutdown): every event
    queued for Redis is in its stream once it returns."""
    ex = executor(group)
    count = 5_000
    for n in range(count):
        ex.publish_event(event_type="tick", channel="burst", data={"id": str(n)})
    ex.stop_bus()
    assert server.xlen(f"fraiseql:{group}:s:burst") == count
