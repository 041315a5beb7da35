"""The README's code runs as written: the quick start serves a subscription end to end, and the
core example produces its frame."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import assert_quick_start_delivers, python_block, running_server


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
    exec(compile(python_block("## Testing your subscriptions"), "README.md", "exec"), namespace)
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
