"""The README's code, and the token refresh guide's, runs as written: the quick start serves a
subscription end to end, and the core example produces its frame."""

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


def test_core_example_runs() -> None:
    exec(compile(python_block("## The core directly"), "README.md", "exec"), {})


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
async def test_existing_schema_example_serves_queries_and_subscriptions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    import httpx

    from fraiseql_fastapi.testing import SubscriptionTestClient

    # The quick start's module name: its `message_posted` is replaced, not duplicated. A real
    # module, where Strawberry looks its types' hints up.
    module = types.ModuleType("readme_quick_start")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    section = "## Your schema as it is, and FastAPI dependencies"
    exec(compile(python_block(section), "README.md", "exec"), namespace)
    app, manager, message = namespace["app"], namespace["manager"], namespace["Message"]
    async with SubscriptionTestClient(app, cookies={"user": "ann"}) as client:
        assert await client.execute("{ hello }") == {"data": {"hello": "hello ann"}}
        sub = await client.subscribe('subscription { messagePosted(roomId: "1") { id text } }')
        await manager.publish("room:1", message(id="7", room_id="1", text="hi"))
        assert await sub.next() == {"data": {"messagePosted": {"id": "7", "text": "hi"}}}
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            answer = await http.post(
                "/graphql", json={"query": "{ hello }"}, headers={"cookie": "user=bob"}
            )
    assert answer.json() == {"data": {"hello": "hello bob"}}


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
