"""Both buses over TLS, against servers of the tests' own (`tls_servers.py`, certificates for
`localhost` signed by a CA the tests make): two ticker processes share each bus and every event
arrives once, in order; a wrong CA, a wrong host name and a plain-text server are refused at
start with an error naming the server (password masked) and the reason."""

from __future__ import annotations

import re
import uuid

import pytest
from helpers import check_processes_share_the_bus
from tls_servers import TlsPostgres, TlsRedis

from fraiseql_core_rs import PyEventBusConfig, PySubscriptionExecutor

PLAIN_REDIS = "redis://127.0.0.1:6379/0"


def refused(config: PyEventBusConfig, *reasons: str) -> str:
    """Starts a bus that must fail; returns the error, checked for `reasons`."""
    ex = PySubscriptionExecutor(config)
    with pytest.raises(ConnectionError) as failed:
        ex.start_bus()
    message = str(failed.value)
    for reason in reasons:
        assert re.search(reason, message), message
    assert "s3cret" not in message, message
    return message


def started(config: PyEventBusConfig) -> None:
    ex = PySubscriptionExecutor(config)
    ex.start_bus()
    assert ex.get_metrics()["bus_connected"] is True
    ex.stop_bus()


# --- Redis ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_redis_two_processes_over_tls(redis_tls: TlsRedis) -> None:
    await check_processes_share_the_bus(
        redis_tls.url(),
        f"tls-{uuid.uuid4().hex[:8]}",
        per_server=100,
        env={"FRAISEQL_BUS_CA_FILE": str(redis_tls.certs.ca)},
    )


def test_redis_verifies_the_server(redis_tls: TlsRedis) -> None:
    server = rf"Redis at rediss://:\*\*\*@localhost:{redis_tls.port}/0"
    started(PyEventBusConfig.redis(redis_tls.url(), tls_ca_file=str(redis_tls.certs.ca)))
    # Another CA, or the system's roots (which do not know the test CA).
    refused(
        PyEventBusConfig.redis(redis_tls.url(), tls_ca_file=str(redis_tls.certs.other_ca)),
        server,
        "UnknownIssuer",
        "not signed by a trusted CA",
    )
    refused(PyEventBusConfig.redis(redis_tls.url()), server, "UnknownIssuer")


def test_redis_checks_the_host_name(redis_tls: TlsRedis) -> None:
    ca = str(redis_tls.certs.ca)
    refused(
        PyEventBusConfig.redis(redis_tls.url("127.0.0.1"), tls_ca_file=ca),
        rf"Redis at rediss://:\*\*\*@127\.0\.0\.1:{redis_tls.port}/0",
        "not valid for name",
    )
    # Only when the URL asks for it (redis-rs's #insecure) is the server not verified.
    started(PyEventBusConfig.redis(redis_tls.url("127.0.0.1", "#insecure")))


def test_redis_refuses_a_plain_text_server() -> None:
    refused(
        PyEventBusConfig.redis(PLAIN_REDIS.replace("redis://", "rediss://:s3cret@")),
        r"Redis at rediss://:\*\*\*@127\.0\.0\.1:6379/0",
        "no answer to the TLS handshake",
    )


# --- PostgreSQL -------------------------------------------------------------------------------


def pg(url: str, prefix: str = "fraiseql") -> PyEventBusConfig:
    return PyEventBusConfig.postgresql(url, channel_prefix=prefix)


@pytest.mark.anyio
async def test_postgresql_two_processes_over_tls(postgres_tls: TlsPostgres) -> None:
    await check_processes_share_the_bus(
        postgres_tls.url(query="?sslmode=verify-full"),
        f"tls-{uuid.uuid4().hex[:8]}",
        per_server=100,
        env={"FRAISEQL_BUS_CA_FILE": str(postgres_tls.certs.ca)},
    )


def test_postgresql_sslmodes(postgres_tls: TlsPostgres) -> None:
    ca, port = postgres_tls.certs.ca, postgres_tls.port
    server = rf"PostgreSQL at localhost:{port} \('postgresql://postgres:\*\*\*@localhost"
    started(pg(postgres_tls.url(query=f"?sslmode=verify-full&sslrootcert={ca}")))
    started(pg(f"host=localhost port={port} user=postgres sslmode=verify-full sslrootcert={ca}"))
    refused(
        pg(
            postgres_tls.url(
                query=f"?sslmode=verify-full&sslrootcert={postgres_tls.certs.other_ca}"
            )
        ),
        server,
        "UnknownIssuer",
    )
    # The wrong host name: refused by verify-full only.
    wrong_host = rf"PostgreSQL at 127\.0\.0\.1:{port} "
    refused(
        pg(postgres_tls.url("127.0.0.1", f"?sslmode=verify-full&sslrootcert={ca}")),
        wrong_host,
        "not valid for name",
    )
    refused(
        pg(f"hostaddr=127.0.0.1 port={port} user=postgres sslmode=verify-full sslrootcert={ca}"),
        wrong_host,
    )
    started(pg(postgres_tls.url("127.0.0.1", f"?sslmode=verify-ca&sslrootcert={ca}")))
    # require checks the chain when given a root certificate (as libpq does), else nothing.
    refused(
        pg(postgres_tls.url(query=f"?sslmode=require&sslrootcert={postgres_tls.certs.other_ca}")),
        "UnknownIssuer",
    )
    started(pg(postgres_tls.url("127.0.0.1", "?sslmode=require")))


def test_postgresql_refuses_a_plain_text_server(postgres_tls: TlsPostgres) -> None:
    postgres_tls.set_ssl(False)
    try:
        url = postgres_tls.url(query=f"?sslmode=verify-full&sslrootcert={postgres_tls.certs.ca}")
        refused(
            pg(url),
            rf"PostgreSQL at localhost:{postgres_tls.port} ",
            "server does not support TLS",
        )
        refused(pg(postgres_tls.url(query="?sslmode=require")), "server does not support TLS")
        started(pg(postgres_tls.url(query="?sslmode=prefer")))
    finally:
        postgres_tls.set_ssl(True)
