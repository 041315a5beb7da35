"""Several server processes of the ticker example sharing one bus (FRAISEQL_EVENT_BUS): real
WebSocket clients on each, publishes through each; everyone receives everything, in order,
exactly once."""

from __future__ import annotations

import uuid

import pytest
from helpers import BUSES, check_processes_share_the_bus

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("bus", sorted(BUSES))
async def test_every_process_delivers_everything_once_in_order(bus: str) -> None:
    await check_processes_share_the_bus(BUSES[bus], f"scale-{uuid.uuid4().hex[:8]}")
