"""Shared fixtures. Helpers for servers and clients live in `helpers.py`."""

from __future__ import annotations

import pytest
from helpers import running_server, ws_client

__all__ = ["running_server", "ws_client"]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the loop the Rust core's callbacks expect)."""
    return "asyncio"
