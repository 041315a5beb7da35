"""Loads the example apps and benchmark scripts (which are not packages) as modules, once,
and the documentation's examples afresh for each test.

Imported by tests as `from example_modules import ...` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def fresh_module(relative_path: str) -> ModuleType:
    """The module of `ROOT/relative_path` (e.g. "docs/examples/sse/app.py"), executed anew on
    each call (its own manager and state), registered in `sys.modules` under a name of its
    own so that dataclasses, pydantic and Strawberry resolve its hints."""
    path = ROOT / relative_path
    name = "loaded_" + relative_path.removesuffix(".py").replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


#: `fresh_module`, executed once per path: the example apps and benchmark scripts.
load_module = functools.cache(fresh_module)
