"""TLS test servers of the tests' own: a CA and server certificates made with the openssl CLI,
a Redis serving TLS only, and a PostgreSQL cluster with `ssl=on`, each on a free 127.0.0.1 port
and removed afterwards.

The server certificates are for the name `localhost` only: connecting to `localhost` verifies,
connecting to `127.0.0.1` is the wrong host name."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from helpers import end, free_port, wait_for_redis

#: What the server certificates are for.
SERVER_NAME = "localhost"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate it signed (for `SERVER_NAME`) and an unrelated CA."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def make_certificates(directory: Path) -> Certificates:
    ca, ca_key = make_ca(directory, "test-ca")
    other_ca, _ = make_ca(directory, "other-ca")
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", f"/CN={SERVER_NAME}", "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip
    extensions = directory / "server.ext"
    extensions.write_text(
        f"subjectAltName=DNS:{SERVER_NAME}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    return Certificates(ca=ca, cert=cert, key=key, other_ca=other_ca)


@dataclass(frozen=True)
class TlsRedis:
    """A running TLS-only Redis with a password."""

    port: int
    password: str
    certs: Certificates

    def url(self, host: str = SERVER_NAME, fragment: str = "") -> str:
        return f"rediss://:{self.password}@{host}:{self.port}/0{fragment}"

    def client(self) -> redis.Redis:
        """A redis-py client of the test (verifying the server like the bus does)."""
        return redis.Redis(
            host=SERVER_NAME,
            port=self.port,
            password=self.password,
            ssl=True,
            ssl_ca_certs=str(self.certs.ca),
        )


@contextlib.contextmanager
def tls_redis(certs: Certificates, directory: Path) -> Iterator[TlsRedis]:
    """redis-server with TLS only (`--port 0`) on a free port; stopped afterwards."""
    server = TlsRedis(port=free_port(), password="s3cret-pw", certs=certs)
    process = subprocess.Popen(
        [
            "redis-server", "--port", "0", "--tls-port", str(server.port),
            "--bind", "127.0.0.1", "--tls-cert-file", str(certs.cert),
            "--tls-key-file", str(certs.key), "--tls-ca-cert-file", str(certs.ca),
            "--tls-auth-clients", "no", "--requirepass", server.password,
            "--save", "", "--appendonly", "no", "--dir", str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = server.client()
        wait_for_redis(client, process)
        client.close()
        yield server
    finally:
        end(process)


@dataclass(frozen=True)
class TlsPostgres:
    """A running PostgreSQL cluster with `ssl=on` (trust authentication)."""

    port: int
    directory: Path
    certs: Certificates

    def url(self, host: str = SERVER_NAME, query: str = "") -> str:
        return f"postgresql://postgres:pg-s3cret@{host}:{self.port}/postgres{query}"

    def query(self, sql: str) -> object:
        """Runs `sql` as the superuser (over the cluster's unix socket); the first value."""
        with psycopg.connect(
            host=str(self.directory), port=self.port, user="postgres", dbname="postgres",
            autocommit=True,
        ) as conn:  # fmt: skip
            cursor = conn.execute(sql.encode())
            row = cursor.fetchone() if cursor.description else None
            return row[0] if row else None

    def set_ssl(self, on: bool) -> None:
        """Turns TLS on or off (a reload), waiting until new connections see it."""
        self.query(f"ALTER SYSTEM SET ssl = {'on' if on else 'off'}")
        self.query("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while self.query("SHOW ssl") != ("on" if on else "off"):
            assert time.monotonic() < deadline, "ssl setting not reloaded"
            time.sleep(0.02)


def as_postgres(command: list[str]) -> list[str]:
    """`command` run as the `postgres` OS user when we are root (initdb and postgres refuse
    to run as root)."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def postgres_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    # Debian and Ubuntu keep the server binaries off PATH.
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise FileNotFoundError(f"{name} (PostgreSQL server binaries) not found")
    return str(candidates[-1])


@contextlib.contextmanager
def tls_postgres(certs: Certificates) -> Iterator[TlsPostgres]:
    """A fresh cluster (initdb in a temporary directory) with ssl=on, listening on a free
    port of 127.0.0.1 and a unix socket in that directory; stopped and removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="fraiseql-pg-"))
    data = directory / "data"
    # The server reads its key as its own user, and refuses a key others can read.
    key = directory / "server.key"
    shutil.copy(certs.key, key)
    shutil.copy(certs.cert, directory / "server.pem")
    key.chmod(0o600)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
        for path in directory.iterdir():
            shutil.chown(path, "postgres")
    server = TlsPostgres(port=free_port(), directory=directory, certs=certs)
    pg_ctl = postgres_binary("pg_ctl")
    try:
        subprocess.run(
            as_postgres([postgres_binary("initdb"), "-D", str(data), "-U", "postgres",
                         "--auth=trust", "--no-sync", "-E", "UTF8"]),
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        # In the file, not on the command line, so that ALTER SYSTEM can turn TLS off.
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"ssl = on\nssl_cert_file = '{directory / 'server.pem'}'\nssl_key_file = '{key}'\n"
            )
        options = (
            f"-c port={server.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={directory} -c fsync=off -c max_connections=50"
        )
        subprocess.run(
            as_postgres([pg_ctl, "start", "-w", "-t", "30", "-D", str(data),
                         "-l", str(directory / "log"), "-o", options]),
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                as_postgres([pg_ctl, "stop", "-D", str(data), "-m", "immediate", "-w"]),
                capture_output=True, timeout=60,
            )  # fmt: skip
        shutil.rmtree(directory, ignore_errors=True)
