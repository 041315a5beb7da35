"""Event bus configuration: PyEventBusConfig."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from fraiseql_core_rs.subscriptions import PyEventBusConfig

REDIS_SCHEMES = "redis://, rediss://, unix:// or redis+unix://"
POSTGRES_EXPECTED = (
    "a postgresql:// or postgres:// URL or a key=value DSN "
    "such as 'host=localhost dbname=app user=app'"
)


def exact(text: str) -> str:
    """A `match=` pattern for exactly this message."""
    return "^" + re.escape(text) + "$"


# --- plan tests -------------------------------------------------------------------------------


def test_memory() -> None:
    config = PyEventBusConfig.memory()
    assert config.bus_type == "memory"
    assert config.url is None
    assert config.consumer_group is None
    assert config.connection_string is None
    assert (config.history, config.history_seconds) == (1000, 120.0)
    kept = PyEventBusConfig.memory(history=10, history_seconds=2.5)
    assert (kept.history, kept.history_seconds) == (10, 2.5)
    assert repr(kept) == "PyEventBusConfig.memory(history=10, history_seconds=2.5)"
    assert kept != config
    assert PyEventBusConfig.redis("redis://localhost").history is None
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="history_seconds"):
            PyEventBusConfig.memory(history_seconds=bad)


def test_redis() -> None:
    config = PyEventBusConfig.redis(url="redis://localhost:6379", consumer_group="test")
    assert config.bus_type == "redis"
    assert config.url == "redis://localhost:6379"
    assert config.consumer_group == "test"
    assert config.connection_string is None


# --- redis ------------------------------------------------------------------------------------


def test_redis_default_consumer_group() -> None:
    assert PyEventBusConfig.redis("redis://localhost").consumer_group == "fraiseql-subscriptions"


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://127.0.0.1:6379/2",
        "redis://user:secret@cache.internal:6380/0",
        "redis://:secret@[::1]:6379",
        "redis://localhost/?protocol=resp3",
        "REDIS://localhost",
        "rediss://cache.example.com:6380",
        "rediss://cache.example.com/#insecure",
        "unix:///run/redis.sock",
        "redis+unix:///run/redis.sock?db=1",
    ],
)
def test_redis_accepts_supported_urls(url: str) -> None:
    config = PyEventBusConfig.redis(url, "workers")
    assert config.url == url
    assert config.consumer_group == "workers"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("http://localhost:6379", "http"),
        ("valkey://localhost", "valkey"),
        ("postgresql://localhost/db", "postgresql"),
    ],
)
def test_redis_rejects_other_schemes(url: str, scheme: str) -> None:
    error = f"Redis URL '{url}' has unsupported scheme '{scheme}'; expected {REDIS_SCHEMES}"
    with pytest.raises(ValueError, match=exact(error)):
        PyEventBusConfig.redis(url)


def test_redis_rejects_urls_without_scheme() -> None:
    error = f"Redis URL 'localhost:6379' has no scheme; expected a {REDIS_SCHEMES} URL"
    with pytest.raises(ValueError, match=exact(error)):
        PyEventBusConfig.redis("localhost:6379")


@pytest.mark.parametrize("url", ["", "   "])
def test_redis_rejects_empty_urls(url: str) -> None:
    with pytest.raises(
        ValueError, match=exact(f"Redis URL is empty; expected a {REDIS_SCHEMES} URL")
    ):
        PyEventBusConfig.redis(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://", "redis://"),
        ("redis://:6379", "redis://:6379"),
        ("rediss:///0", "rediss:///0"),
        ("redis://:hunter2@/0", "redis://:***@/0"),
    ],
)
def test_redis_requires_a_host(url: str, shown: str) -> None:
    with pytest.raises(ValueError, match=exact(f"Redis URL '{shown}' has no host")):
        PyEventBusConfig.redis(url)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (
            "redis://user:hunter2@localhost:6379/notanumber",
            "Invalid Redis URL 'redis://user:***@localhost:6379/notanumber': "
            "Invalid database number",
        ),
        (
            "redis://localhost/?protocol=resp9",
            "Invalid Redis URL 'redis://localhost/?protocol=resp9': "
            "Invalid protocol version: resp9",
        ),
        (
            "redis://0.0.0.0:6379",
            "Invalid Redis URL 'redis://0.0.0.0:6379': "
            "Cannot connect to a wildcard address (0.0.0.0 or ::)",
        ),
        ("unix://", "Invalid Redis URL 'unix://': Missing path"),
        ("redis://localhost:99999", "Invalid Redis URL 'redis://localhost:99999': not a valid URL"),
        (
            "rediss://host/#other",
            "Invalid Redis URL 'rediss://host/#other': "
            "only #insecure is supported as a rediss:// fragment",
        ),
    ],
)
def test_redis_rejects_invalid_urls(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=exact(error)):
        PyEventBusConfig.redis(url)


def test_redis_errors_never_show_passwords() -> None:
    with pytest.raises(ValueError) as caught:
        PyEventBusConfig.redis("unix:///run/redis.sock?db=x&pass=hunter2")
    assert "hunter2" not in str(caught.value)
    assert "pass=***" in str(caught.value)


def test_redis_requires_a_consumer_group() -> None:
    with pytest.raises(ValueError, match=exact("Redis consumer group must not be empty")):
        PyEventBusConfig.redis("redis://localhost", consumer_group="")


def test_redis_argument_types() -> None:
    with pytest.raises(TypeError):
        PyEventBusConfig.redis(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PyEventBusConfig.redis("redis://localhost", 5)  # type: ignore[arg-type]


# --- postgresql -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "conn",
    [
        "postgresql://localhost/test",
        "postgres://user:secret@db.internal:5432/app?sslmode=disable",
        "postgresql://user@%2Frun%2Fpostgresql/db",
        "host=127.0.0.1 dbname=test user=postgres",
        "host=/run/postgresql dbname=test",
        "hostaddr=127.0.0.1 dbname=test password='a b'",
    ],
)
def test_postgresql_accepts_urls_and_dsns(conn: str) -> None:
    config = PyEventBusConfig.postgresql(conn)
    assert config.bus_type == "postgresql"
    assert config.connection_string == conn
    assert config.url is None
    assert config.consumer_group is None


@pytest.mark.parametrize("conn", ["", "   "])
def test_postgresql_rejects_empty_strings(conn: str) -> None:
    error = f"PostgreSQL connection string is empty; expected {POSTGRES_EXPECTED}"
    with pytest.raises(ValueError, match=exact(error)):
        PyEventBusConfig.postgresql(conn)


def test_postgresql_rejects_other_schemes() -> None:
    error = (
        "PostgreSQL connection string 'mysql://root:***@localhost/db' has unsupported scheme "
        f"'mysql'; expected {POSTGRES_EXPECTED}"
    )
    with pytest.raises(ValueError, match=exact(error)):
        PyEventBusConfig.postgresql("mysql://root:hunter2@localhost/db")


@pytest.mark.parametrize(
    ("conn", "error"),
    [
        (
            "host=localhost bogus=1 password=hunter2",
            "Invalid PostgreSQL connection string 'host=localhost bogus=1 password=***': "
            "invalid connection string: unknown option `bogus`",
        ),
        (
            "postgresql://u:hunter2@localhost:notaport/db",
            "Invalid PostgreSQL connection string 'postgresql://u:***@localhost:notaport/db': "
            "invalid connection string: invalid value for option `port`",
        ),
    ],
)
def test_postgresql_rejects_invalid_strings(conn: str, error: str) -> None:
    with pytest.raises(ValueError, match=exact(error)):
        PyEventBusConfig.postgresql(conn)


def test_postgresql_rejects_a_bare_word() -> None:
    with pytest.raises(ValueError, match=r"^Invalid PostgreSQL connection string 'localhost': "):
        PyEventBusConfig.postgresql("localhost")


@pytest.mark.parametrize(
    ("conn", "shown"),
    [
        ("dbname=test password=hunter2", "dbname=test password=***"),
        ("postgresql://", "postgresql://"),
    ],
)
def test_postgresql_requires_a_host(conn: str, shown: str) -> None:
    error = (
        f"PostgreSQL connection string '{shown}' names no host; "
        "add host=... or use postgresql://HOST/..."
    )
    with pytest.raises(ValueError, match=exact(error)):
        PyEventBusConfig.postgresql(conn)


# --- object behaviour -------------------------------------------------------------------------


def test_repr_masks_passwords() -> None:
    assert repr(PyEventBusConfig.memory()) == "PyEventBusConfig.memory()"
    assert repr(PyEventBusConfig.redis("redis://:hunter2@cache:6379/0", "g")) == (
        "PyEventBusConfig.redis(url='redis://:***@cache:6379/0', consumer_group='g', "
        "tls_ca_file=None)"
    )
    assert repr(PyEventBusConfig.postgresql("host=db password='hunter 2' user=u")) == (
        "PyEventBusConfig.postgresql(connection_string=\"host=db password='***' user=u\", "
        "channel_prefix='fraiseql', retention=3600.0)"
    )
    assert repr(
        PyEventBusConfig.postgresql("postgresql://h/db?password=hunter2", "app", retention=90)
    ) == (
        "PyEventBusConfig.postgresql(connection_string='postgresql://h/db?password=***', "
        "channel_prefix='app', retention=90.0)"
    )


def test_getters_keep_the_real_values() -> None:
    assert PyEventBusConfig.redis("redis://:pw@h").url == "redis://:pw@h"
    assert PyEventBusConfig.postgresql("host=h password=pw").connection_string == (
        "host=h password=pw"
    )


def test_equality_and_hash() -> None:
    assert PyEventBusConfig.memory() == PyEventBusConfig.memory()
    redis = PyEventBusConfig.redis("redis://localhost")
    assert redis == PyEventBusConfig.redis("redis://localhost", "fraiseql-subscriptions")
    assert redis != PyEventBusConfig.redis("redis://localhost", "other")
    assert redis != PyEventBusConfig.memory()
    assert PyEventBusConfig.postgresql("host=a") != PyEventBusConfig.postgresql("host=b")
    assert redis != "redis://localhost"
    assert len({PyEventBusConfig.memory(), PyEventBusConfig.memory(), redis}) == 2


def test_configs_are_immutable() -> None:
    config = PyEventBusConfig.memory()
    with pytest.raises(AttributeError):
        config.bus_type = "redis"  # type: ignore[misc]


# --- TLS and retention ------------------------------------------------------------------------


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    """A CA certificate of the test's own (made with the openssl CLI)."""
    path = tmp_path / "ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
            "/CN=test-ca",
            "-days",
            "1",
            "-nodes",
            "-keyout",
            str(tmp_path / "ca.key"),
            "-out",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return str(path)


def test_redis_tls_ca_file(ca_file: str) -> None:
    config = PyEventBusConfig.redis("rediss://:pw@cache:6380", tls_ca_file=Path(ca_file))
    assert config.tls_ca_file == ca_file
    assert repr(config) == (
        "PyEventBusConfig.redis(url='rediss://:***@cache:6380', "
        f"consumer_group='fraiseql-subscriptions', tls_ca_file={ca_file!r})"
    )
    assert config != PyEventBusConfig.redis("rediss://:pw@cache:6380")
    assert PyEventBusConfig.redis("redis://h").tls_ca_file is None


def test_redis_tls_ca_file_errors(ca_file: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^cannot read CA file '/nonexistent\.pem': "):
        PyEventBusConfig.redis("rediss://h", tls_ca_file="/nonexistent.pem")
    (tmp_path / "empty.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        PyEventBusConfig.redis("rediss://h", tls_ca_file=tmp_path / "empty.pem")
    with pytest.raises(ValueError, match=r"needs a rediss:// URL, not 'redis://:\*\*\*@h'"):
        PyEventBusConfig.redis("redis://:pw@h", tls_ca_file=ca_file)


def test_postgresql_tls_options(ca_file: str) -> None:
    for conn in (
        f"host=h sslmode=verify-full sslrootcert={ca_file}",
        f"postgresql://u:pw@h/db?sslmode=verify-ca&sslrootcert={ca_file}",
        "postgresql://h/db?sslmode=require",
        "host=h sslmode=disable",
    ):
        assert PyEventBusConfig.postgresql(conn).connection_string == conn
    with pytest.raises(ValueError, match=r"invalid sslmode 'verify'; expected disable, prefer"):
        PyEventBusConfig.postgresql("host=h sslmode=verify password=hunter2")
    with pytest.raises(ValueError, match=r"'postgresql://u:\*\*\*@h/db\?sslrootcert=/no.pem"):
        PyEventBusConfig.postgresql(
            "postgresql://u:hunter2@h/db?sslrootcert=/no.pem&sslmode=verify-full"
        )


def test_postgresql_retention() -> None:
    assert PyEventBusConfig.postgresql("host=h").retention == 3600.0
    assert PyEventBusConfig.postgresql("host=h", retention=1.5).retention == 1.5
    assert PyEventBusConfig.postgresql("host=h", retention=timedelta(days=1)).retention == 86400
    assert PyEventBusConfig.postgresql("host=h", retention=60) == PyEventBusConfig.postgresql(
        "host=h", retention=timedelta(minutes=1)
    )
    assert PyEventBusConfig.redis("redis://h").retention is None
    for bad in (0, -1, float("nan"), timedelta(0)):
        with pytest.raises(ValueError, match="retention must be positive"):
            PyEventBusConfig.postgresql("host=h", retention=bad)
    with pytest.raises(TypeError):
        PyEventBusConfig.postgresql("host=h", retention="1h")  # type: ignore[arg-type]
