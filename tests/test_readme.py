"""The README's code, and the testing and token refresh guides', runs as written: the quick
start serves a subscription end to end, and the guides' examples do what their pages say."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import (
    ROOT,
    assert_quick_start_delivers,
    python_block,
    running_server,
    until,
    ws_client,
)


@pytest.mark.anyio
async def test_quick_start_serves_a_subscription() -> None:
    namespace: dict[str, Any] = {"__name__": "readme_quick_start"}
    exec(compile(python_block("## Quick start"), "README.md", "exec"), namespace)
    async with running_server(namespace["app"]) as address:
        await assert_quick_start_delivers(address)


@pytest.mark.anyio
async def test_testing_example_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    quick_start: dict[str, Any] = {"__name__": "readme_quick_start"}
    exec(compile(python_block("## Quick start"), "README.md", "exec"), quick_start)
    module = types.ModuleType("app")
    module.__dict__.update(quick_start)
    monkeypatch.setitem(sys.modules, "app", module)
    namespace: dict[str, Any] = {"__name__": "readme_testing"}
    page = ROOT / "docs" / "guides" / "testing.md"
    exec(compile(python_block("# Testing your subscriptions", page), str(page), "exec"), namespace)
    await namespace["test_message_posted"]()


@pytest.mark.anyio
async def test_token_refresh_example_renews_a_live_connection() -> None:
    import time

    from fastapi import FastAPI
    from helpers import COUNTER, counters

    from fraiseql_fastapi import SubscriptionManager
    from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

    def decode_token(token: str | None) -> dict[str, Any] | None:
        lifetime = {"first": 0.5, "second": 30.0}.get(token or "")
        if lifetime is None:
            return None
        return {"sub": "ann", "tenant": "acme", "exp": time.time() + lifetime}

    manager = SubscriptionManager(subscriptions=counters.fields)
    app = FastAPI(lifespan=manager.lifespan)
    namespace = {
        "app": app,
        "manager": manager,
        "decode_token": decode_token,
        "SubscriptionRouterFactory": SubscriptionRouterFactory,
    }
    page = ROOT / "docs" / "guides" / "token-refresh.md"
    exec(compile(python_block("# Token refresh", page), str(page), "exec"), namespace)
    async with running_server(app) as address, ws_client(address) as client:
        assert (await client.init({"token": "first"}))["type"] == "connection_ack"
        await client.subscribe("1", COUNTER)
        await client.send({"type": "ping", "payload": {"token": "second"}})
        pong = await client.receive()
        assert pong["type"] == "pong"
        assert pong["payload"]["expiresAt"] > time.time() + 20
        await asyncio.sleep(0.8)  # past the first token's expiry
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("counter", {"n": 1})
        assert (await client.receive())["payload"]["data"] == {"counter": 1}
        await client.send({"type": "ping", "payload": {"token": "forged"}})
        assert await client.closed_with() == (4403, "Forbidden")
