"""The ticker example (`examples/ticker/app.py`) as the benchmark suite runs it: the same app and
endpoints, with a choice of resolver and of the per-connection subscription limit.

    python benchmarks/fraiseql_server.py [--port 8000] [--resolver example|passthrough|pydantic]
        [--max-subscriptions 100] [--positions]

Resolvers of `ticks(channel: String!): Tick!`:
- `example`: the example's own (builds a dataclass `Tick`);
- `passthrough`: returns the event's data as it is;
- `pydantic`: validates the event's data into a pydantic model (real Python work per event).

`--positions`: every `next` carries its event's cursor (`extensions.cursor`), what resume after
reconnect costs per event.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from fraiseql_fastapi import ID, EventBusConfig, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction import ProtocolOptions

TICKER = Path(__file__).resolve().parent.parent / "examples" / "ticker" / "app.py"


def load_ticker() -> ModuleType:
    """The ticker example, imported from its file."""
    spec = importlib.util.spec_from_file_location("ticker_app", TICKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class TickModel(BaseModel):
    """One value published on a channel."""

    id: ID
    channel: str
    value: int
    ts: float | None = None


passthrough = SubscriptionRegistry()
pydantic_registry = SubscriptionRegistry()


@subscription(name="ticks", channel="{channel}", scope="global", registry=passthrough)
def ticks_passthrough(event: Any, channel: str) -> TickModel:
    """The ticks published on `channel` (the event's data as it is)."""
    data: Any = event.data
    return data  # type: ignore[no-any-return]


@subscription(name="ticks", channel="{channel}", scope="global", registry=pydantic_registry)
def ticks_pydantic(event: Any, channel: str) -> TickModel:
    """The ticks published on `channel` (validated into a pydantic model)."""
    return TickModel.model_validate(event.data)


RESOLVERS: dict[str, SubscriptionRegistry | None] = {
    "example": None,
    "passthrough": passthrough,
    "pydantic": pydantic_registry,
}


def main(argv: list[str] | None = None) -> None:
    """Serves the ticker with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--ws", default="auto", help="uvicorn's WebSocket implementation")
    parser.add_argument("--resolver", choices=sorted(RESOLVERS), default="example")
    parser.add_argument("--max-subscriptions", type=int, default=ProtocolOptions.max_subscriptions)
    parser.add_argument("--positions", action="store_true", help="cursors on every event")
    args = parser.parse_args(argv)
    ticker = load_ticker()
    app = ticker.create_app(
        EventBusConfig.memory(),
        options=ProtocolOptions(max_subscriptions=args.max_subscriptions),
        subscriptions=RESOLVERS[args.resolver],
        positions=args.positions,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, ws=args.ws)


if __name__ == "__main__":
    main()
