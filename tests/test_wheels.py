"""The wheels `scripts/build` writes to dist/ are all a user needs: installed with fastapi and
uvicorn into a fresh virtualenv outside the source tree, the README's quick start serves a
subscription under uvicorn; with current Strawberry and gql beside them, `pip check` is clean.

scripts/build reuses dist/ when it holds the wheels of the current sources; pip fetches the
third-party packages from the package index."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import assert_quick_start_delivers, free_port, python_block

ROOT = Path(__file__).parent.parent
DIST = ROOT / "dist"


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    """Runs a command with no trace of .venv or the source tree in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHONNOUSERSITE"] = "1"
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheels() -> list[Path]:
    """The two wheels of the current sources (built unless dist/ has them)."""
    run(ROOT / "scripts" / "build", cwd=ROOT, timeout=1800)
    core = sorted(DIST.glob("fraiseql_core_rs-*-cp310-abi3-*.whl"))
    package = sorted(DIST.glob("fraiseql_fastapi-*-py3-none-any.whl"))
    assert len(core) == 1 and len(package) == 1, list(DIST.iterdir())
    return [core[0], package[0]]


@pytest.fixture(scope="module")
def venv(wheels: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheels, fastapi and uvicorn[standard], as the README says."""
    home = tmp_path_factory.mktemp("wheels")
    run(sys.executable, "-m", "venv", home / "venv", cwd=home)
    python = home / "venv" / "bin" / "python"
    pip = (python, "-m", "pip", "--disable-pip-version-check", "-q")
    run(*pip, "install", *wheels, "fastapi", "uvicorn[standard]", cwd=home)
    run(*pip, "check", cwd=home)
    return home / "venv"


def test_each_wheel_carries_its_typing(wheels: list[Path]) -> None:
    core, package = (set(zipfile.ZipFile(wheel).namelist()) for wheel in wheels)
    assert {"fraiseql_core_rs/__init__.pyi", "fraiseql_core_rs/py.typed"} <= core
    assert any(name.startswith("fraiseql_core_rs/fraiseql_core_rs.abi3.") for name in core)
    assert {"fraiseql_fastapi/py.typed", "fraiseql_fastapi/graphql_compat.py"} <= package
    assert "fraiseql_fastapi/static/graphiql.html" in package  # the GraphiQL page's template
    assert not any("__pycache__" in name for name in core | package)


def test_the_packages_come_from_the_virtualenv(venv: Path, tmp_path: Path) -> None:
    probe = (
        "import json, sys, fraiseql_core_rs, fraiseql_fastapi; "
        "print(json.dumps([fraiseql_core_rs.__file__, fraiseql_fastapi.__file__, sys.path]))"
    )
    core_file, package_file, path = json.loads(
        run(venv / "bin" / "python", "-c", probe, cwd=tmp_path)
    )
    assert Path(core_file).is_relative_to(venv)
    assert Path(package_file).is_relative_to(venv)
    assert not [entry for entry in path if entry and Path(entry).is_relative_to(ROOT)]


@pytest.fixture
def quick_start_server(venv: Path, tmp_path: Path) -> Iterator[str]:
    """The README's quick start, saved as app.py, under uvicorn from the virtualenv."""
    (tmp_path / "app.py").write_text(python_block("## Quick start"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    server = subprocess.Popen(
        [venv / "bin" / "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "uvicorn did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0]
    # A clean shutdown on SIGTERM (uvicorn then re-raises the signal: the exit status says so).
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete." in output, output


@pytest.mark.anyio
async def test_the_readme_quick_start_serves_a_subscription(quick_start_server: str) -> None:
    await assert_quick_start_delivers(quick_start_server)


def test_the_wheels_resolve_with_current_strawberry_and_gql(venv: Path, tmp_path: Path) -> None:
    # Runs last in this module: it adds to the virtualenv the tests above use.
    python = venv / "bin" / "python"
    pip = (python, "-m", "pip", "--disable-pip-version-check", "-q")
    run(*pip, "install", "strawberry-graphql>=0.341", "gql[websockets]>=4.4", cwd=tmp_path)
    run(*pip, "check", cwd=tmp_path)
    versions = run(
        python,
        "-c",
        "import graphql, gql, strawberry, importlib.metadata as m; "
        "print(graphql.__version__, gql.__version__, m.version('strawberry-graphql'))",
        cwd=tmp_path,
    ).split()
    assert versions[0].startswith("3.3."), versions
