"""The documentation site builds in strict mode (no broken link or reference), and its code
runs as written: the tutorial's files under docs/examples/ serve what the tutorial says, and
every Python block of a page is either included from such a file or run by a test."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from pathlib import Path

import httpx
import pytest
from example_modules import fresh_module
from helpers import ROOT, blocks, node_client, running_server, until, ws_client

DOCS = ROOT / "docs"
TUTORIAL = DOCS / "examples" / "tutorial"
#: Pages whose Python blocks a test runs as they stand (the test that does).
RUN_IN_PLACE = {
    "guides/token-refresh.md": "tests/test_readme.py",
    "guides/testing.md": "tests/test_readme.py",
}


#: What applications import besides the `__all__` of the modules in `public_api`.
PUBLIC_BEYOND_ALL = [
    "fraiseql_fastapi.decorator.SubscriptionRegistry",
    "fraiseql_fastapi.decorator.SubscriptionField",
    "fraiseql_fastapi.http_abstraction.fastapi.SubscriptionRouterFactory",
    "fraiseql_fastapi.http_abstraction.starlette.create_subscription_app",
    "fraiseql_fastapi.http_abstraction.starlette.SubscriptionRoute",
    "fraiseql_fastapi.http_abstraction.starlette.serve_websocket",
    "fraiseql_fastapi.limits.Limits",
    "fraiseql_fastapi.resume",
    "fraiseql_fastapi.graphiql.graphiql_page",
]


def public_api() -> list[str]:
    """Every public object: the `__all__` of the modules applications import from, and the
    objects of `PUBLIC_BEYOND_ALL`."""
    import importlib

    names = list(PUBLIC_BEYOND_ALL)
    for module_name in (
        "fraiseql_fastapi",
        "fraiseql_fastapi.http_abstraction",
        "fraiseql_fastapi.testing",
        "fraiseql_fastapi.metrics",
        "fraiseql_fastapi.native.uvicorn",
    ):
        module = importlib.import_module(module_name)
        names += [f"{module_name}.{name}" for name in module.__all__ if name != "__version__"]
    return names


def test_the_site_builds_in_strict_mode(built_site: Path) -> None:
    reference = (built_site / "reference" / "python" / "index.html").read_text()
    assert "max_rate" in reference
    missing = [name for name in public_api() if f'id="{name}"' not in reference]
    assert not missing, f"not on the Python API page: {missing}"
    core = (built_site / "reference" / "core" / "index.html").read_text()
    assert "register_subscription" in core and "history_seconds" in core


def test_every_python_block_is_included_from_a_file_or_run_by_a_test() -> None:
    for page in DOCS.rglob("*.md"):
        name = page.relative_to(DOCS).as_posix()
        for block in blocks(page, "python"):
            included = block.strip().startswith("--8<--")
            assert included or name in RUN_IN_PLACE, f"{name}: a Python block nothing runs"
            if included:
                # docs/examples/ (run by the tests of this file and tests/test_guide_*.py) or
                # the repository's examples/ (run by tests/test_examples.py).
                target = block.strip().split('"')[1].split(":")[0]
                in_docs = (DOCS / "examples" / target).is_file()
                in_examples = target.startswith("examples/") and (ROOT / target).is_file()
                assert in_docs or in_examples, (name, target)


@pytest.mark.anyio
async def test_tutorial_step_1_serves_its_subscription() -> None:
    step = fresh_module("docs/examples/tutorial/step1_app.py")
    async with running_server(step.app) as address, ws_client(address) as client:
        assert (await client.init())["type"] == "connection_ack"
        query = 'subscription { messagePosted(roomId: "lobby") { author text } }'
        await client.subscribe("1", query)
        await until(lambda: step.manager.get_metrics()["subscribers"] == 1)
        data = {"id": "1", "room_id": "lobby", "author": "ann", "text": "hi"}
        await step.manager.publish("room:lobby", data, event_type="messagePosted")
        message = await client.receive()
        assert message["payload"] == {"data": {"messagePosted": {"author": "ann", "text": "hi"}}}


@pytest.mark.anyio
async def test_tutorial_step_2_keeps_tenants_apart_with_its_client(
    capsys: pytest.CaptureFixture[str],
) -> None:
    step = fresh_module("docs/examples/tutorial/step2_app.py")
    client = fresh_module("docs/examples/tutorial/client.py")
    async with running_server(step.app) as address:
        url = f"ws://{address}/graphql"
        listeners = [
            asyncio.create_task(client.listen(token, "lobby", url)) for token in ("alice", "carol")
        ]
        await until(lambda: step.manager.get_metrics()["subscribers"] == 2)
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            posted = await http.post(
                "/rooms/lobby/messages",
                json={"text": "hi"},
                headers={"authorization": "Bearer bob"},
            )
            assert posted.json() == {"delivered": 1}, "alice only: carol is of another tenant"
            refused = await http.post("/rooms/lobby/messages", json={"text": "x"})
            assert refused.status_code == 401
        await until(lambda: "bob: hi" in capsys.readouterr().out)
        async with ws_client(address) as stranger:
            await stranger.send({"type": "connection_init", "payload": {"token": "mallory"}})
            assert await stranger.closed_with() == (4403, "Forbidden")
        for listener in listeners:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


@pytest.mark.anyio
async def test_tutorial_step_3_is_a_chat_in_the_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three windows of the tutorial's page: alice and bob of acme, carol of globex, all in
    the lobby. Bob sends "hi": both acme windows show it, carol's shows nothing."""
    monkeypatch.syspath_prepend(str(TUTORIAL))
    monkeypatch.delitem(sys.modules, "step2_app", raising=False)
    step = fresh_module("docs/examples/tutorial/step3_app.py")
    async with (
        running_server(step.app) as address,
        node_client(
            "tutorial_chat.mjs", f"http://{address}/", "bob", "alice", "bob", "carol"
        ) as browser,
    ):
        await browser.expect("joined", timeout=40)
        await until(lambda: step.manager.get_metrics()["subscribers"] == 3)
        await browser.tell("send")
        await until(lambda: step.manager.get_metrics()["events_published"] == 1)
        await asyncio.sleep(0.3)  # what carol's window would show, were it sent to her
        await browser.tell("read")
        seen = await browser.expect("seen")
    assert seen["messages"] == {"alice": ["bob: hi"], "bob": ["bob: hi"], "carol": []}


def test_the_readme_links_to_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs|benchmarks|examples)/[^)#]+)", readme)
    assert len(links) > 20
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing
    pages = {page.relative_to(ROOT).as_posix() for page in DOCS.rglob("*.md")}
    linked = {link for link in links if link.startswith("docs/")}
    assert pages - linked == set(), "a page of the site the README does not list"
