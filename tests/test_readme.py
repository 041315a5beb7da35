"""The README's code runs as written: the quick start serves a subscription end to end, and the
core example produces its frame."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import python_block, running_server, ws_client


@pytest.mark.anyio
async def test_quick_start_serves_a_subscription() -> None:
    namespace: dict[str, Any] = {"__name__": "readme_quick_start"}
    exec(compile(python_block("## Quick start"), "README.md", "exec"), namespace)
    async with running_server(namespace["app"]) as address, ws_client(address) as client:
        assert await client.init({"token": "ann"}) == {"type": "connection_ack"}
        await client.subscribe(
            "1",
            "subscription ($room: String!) { messagePosted(roomId: $room) { id text } }",
            {"room": "42"},
        )
        async with httpx.AsyncClient() as http:
            for _ in range(100):  # until the subscription is registered
                response = await http.post(
                    f"http://{address}/rooms/42/messages",
                    json={"id": "1", "room_id": "42", "text": "hi"},
                )
                if response.json()["delivered"]:
                    break
        assert await client.receive() == {
            "id": "1",
            "type": "next",
            "payload": {"data": {"messagePosted": {"id": "1", "text": "hi"}}},
        }


def test_core_example_runs() -> None:
    exec(compile(python_block("## The core directly"), "README.md", "exec"), {})
