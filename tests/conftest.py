"""Shared fixtures. Helpers for servers and clients live in `helpers.py` and `tls_servers.py`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from example_modules import ROOT
from helpers import running_server, ws_client
from tls_servers import (
    Certificates,
    TlsPostgres,
    TlsRedis,
    make_certificates,
    tls_postgres,
    tls_redis,
)

__all__ = ["running_server", "ws_client"]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the loop the Rust core's callbacks expect)."""
    return "asyncio"


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA, a server certificate for `localhost` it signed, and an unrelated CA."""
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def redis_tls(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsRedis]:
    """A TLS-only Redis of the tests' own, with a password."""
    with tls_redis(certificates, tmp_path_factory.mktemp("redis-tls")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_tls(certificates: Certificates) -> Iterator[TlsPostgres]:
    """A PostgreSQL cluster of the tests' own with ssl=on."""
    with tls_postgres(certificates) as server:
        yield server


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built once in strict mode (no broken link or reference); its
    directory."""
    site = tmp_path_factory.mktemp("site")
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert completed.returncode == 0, completed.stderr
    return site


RUST_CLIENT_CRATE = ROOT / "benchmarks" / "load-client"


@pytest.fixture(scope="session")
def rust_client() -> Path:
    """The benchmarks' Rust load client, built in release mode (quick when nothing changed)."""
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    manifest = RUST_CLIENT_CRATE / "Cargo.toml"
    subprocess.run(
        [cargo, "build", "--release", "--locked", "--quiet", "--manifest-path", str(manifest)],
        check=True,
        timeout=900,
    )
    binary = RUST_CLIENT_CRATE / "target" / "release" / "fraiseql-load-client"
    assert binary.is_file()
    return binary
