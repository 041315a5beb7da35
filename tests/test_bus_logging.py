"""The buses' log records on Python's `logging` (logger `fraiseql_fastapi.bus`): connects,
disconnects with the reason, reconnects, replays and a full publish queue, caused for real (a
killed connection, a stopped server), never with a password in them."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from tls_servers import Certificates, TlsRedis, tls_redis

from fraiseql_core_rs import PyEventBusConfig, PySubscriptionExecutor

LOGGER = "fraiseql_fastapi.bus"
QUERY = "subscription { ticks { id } }"


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    """The bus records so far (everything from DEBUG on is captured)."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return lambda: [r for r in caplog.records if r.name == LOGGER]


def wait_for_record(
    records: Callable[[], list[logging.LogRecord]], level: int, text: str, timeout: float = 10
) -> logging.LogRecord:
    """The first record at `level` containing `text`, waited for (records arrive from the
    bus's logging thread)."""
    deadline = time.monotonic() + timeout
    while True:
        for record in records():
            if record.levelno == level and text in record.getMessage():
                return record
        shown = [f"{r.levelname}: {r.getMessage()}" for r in records()]
        assert time.monotonic() < deadline, f"no {text!r} record in {shown}"
        time.sleep(0.02)


def assert_no_password(records: list[logging.LogRecord], password: str) -> None:
    assert records
    for record in records:
        assert password not in record.getMessage(), record.getMessage()


def test_redis_connection_kill_is_logged(
    redis_tls: TlsRedis, records: Callable[[], list[logging.LogRecord]]
) -> None:
    group = f"log-{uuid.uuid4().hex[:8]}"
    ex = PySubscriptionExecutor(
        PyEventBusConfig.redis(redis_tls.url(), group, tls_ca_file=str(redis_tls.certs.ca))
    )
    ex.start_bus()
    server = redis_tls.client()
    try:
        masked = f"Redis at rediss://:***@localhost:{redis_tls.port}/0"
        wait_for_record(records, logging.INFO, f"connected to {masked}")
        ex.register_subscription("c", "s", QUERY, channels=["ch"])
        name = f"fraiseql:{group}:p:ch"
        deadline = time.monotonic() + 5
        while not dict(server.pubsub_numsub(name)).get(name.encode()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert server.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        lost = wait_for_record(records, logging.WARNING, "lost the subscription connection")
        assert masked in lost.getMessage()
        assert "reconnecting" in lost.getMessage()
        back = wait_for_record(records, logging.INFO, "reconnected to")
        assert "replayed 0 missed events on 1 channels" in back.getMessage()
    finally:
        ex.stop_bus()
        server.close()
    wait_for_record(records, logging.INFO, f"disconnected from {masked} (stopped)")
    assert_no_password(records(), redis_tls.password)


def test_redis_outage_and_full_publish_queue_are_logged(
    certificates: Certificates, tmp_path: Path, records: Callable[[], list[logging.LogRecord]]
) -> None:
    with tls_redis(certificates, tmp_path) as server:
        ex = PySubscriptionExecutor(
            PyEventBusConfig.redis(server.url(), tls_ca_file=str(certificates.ca))
        )
        ex.start_bus()
    try:
        # The server is gone: the publisher reports it, then its queue fills.
        with pytest.raises(ConnectionError, match="10000 events already wait"):
            for i in range(20_000):
                ex.publish_event("tick", "ch", {"id": str(i)})
        full = wait_for_record(records, logging.WARNING, "publish queue full")
        assert f"rediss://:***@localhost:{server.port}/0" in full.getMessage()
        wait_for_record(records, logging.WARNING, "publishing to Redis at")
        # Once, not per refused event.
        assert len([r for r in records() if "publish queue full" in r.getMessage()]) == 1
    finally:
        ex.stop_bus()
    assert_no_password(records(), server.password)


def test_postgresql_connection_kill_is_logged(
    records: Callable[[], list[logging.LogRecord]],
) -> None:
    app = f"log{uuid.uuid4().hex[:8]}"
    password = "pg-log-s3cret"
    # Trust authentication ignores the password; it is in the string all the same.
    dsn = f"postgresql://postgres:{password}@127.0.0.1:5432/test?application_name={app}"
    masked = "postgresql://postgres:***@127.0.0.1:5432/test"
    ex = PySubscriptionExecutor(PyEventBusConfig.postgresql(dsn))
    ex.start_bus()
    try:
        wait_for_record(
            records, logging.INFO, f"connected to PostgreSQL at 127.0.0.1:5432 ('{masked}"
        )
        ex.register_subscription("c", "s", QUERY, channels=["ch"])
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as db:
            killed = db.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (f"{app}-bus-listen",),
            ).fetchone()
        assert killed == (1,)
        lost = wait_for_record(records, logging.WARNING, "lost the listening connection")
        assert "terminating connection due to administrator command" in lost.getMessage()
        assert masked in lost.getMessage()
        wait_for_record(records, logging.INFO, "reconnected the listening connection")
        wait_for_record(records, logging.INFO, "events from PostgreSQL at 127.0.0.1:5432")
    finally:
        ex.stop_bus()
    assert_no_password(records(), password)
