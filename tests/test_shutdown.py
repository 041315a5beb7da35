"""A real server process shutting down (SIGTERM to uvicorn): every open operation gets
`complete` and the connection closes with 1001, before uvicorn would drop it with 1012."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from helpers import free_port, ws_client
from test_readme import python_block

pytestmark = pytest.mark.anyio


async def test_sigterm_completes_operations_and_closes_1001(tmp_path: Path) -> None:
    (tmp_path / "quick_start.py").write_text(python_block("## Quick start"))
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "quick_start:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    try:
        address = f"127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    await http.post(f"http://{address}/graphql", json={"query": "{__typename}"})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        async with ws_client(address) as client:
            await client.init({"token": "ann"})
            query = "subscription ($room: String!) { messagePosted(roomId: $room) { id } }"
            await client.subscribe("1", query, {"room": "1"})
            await client.subscribe("2", query, {"room": "2"})
            await asyncio.sleep(0.3)
            server.send_signal(signal.SIGTERM)
            completes = [await client.receive(), await client.receive()]
            assert sorted(m["id"] for m in completes) == ["1", "2"]
            assert all(m["type"] == "complete" for m in completes)
            assert await client.closed_with() == (1001, "Server shutting down")
        # uvicorn re-raises the signal once it has shut down, so the status reports it.
        assert server.wait(timeout=10) in (0, -signal.SIGTERM)
    finally:
        server.kill()
        server.wait()
