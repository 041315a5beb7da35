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
