"""What the Rust core calls to resolve an event: `CoreResolver` for a field declared on a
channel (once per event for each group of subscriptions sharing it), and `StreamResolver` with
`run_stream` for a field declared as an async generator, whose values are fed to the core one
subscription at a time through a private channel, and so projected and sent like any other.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Mapping
from typing import Any

from fraiseql_core_rs import PyComplete, PyEvent, PySubscriptionExecutor

from .context import ConnectionContext
from .conversion import to_jsonable
from .field import SubscriptionField

__all__ = ["CoreResolver", "StreamResolver", "run_stream"]


class CoreResolver:
    """Calls the user's resolver with the arguments bound at subscribe time (Python values, by
    Python name) and turns its result into JSON-compatible data (`Complete(last)` stays one,
    around `last`). An exception goes back to the core, which sends that event's subscribers a
    field error formatted by the manager's `ErrorFormatter` (masked, logged) and keeps their
    subscriptions."""

    def __init__(self, field: SubscriptionField) -> None:
        self.field = field

    def __call__(self, event: PyEvent, arguments: Mapping[str, Any], context: Any) -> Any:
        result = self.field.call(event, arguments, context)
        if inspect.isawaitable(result):
            return self._finish(result)
        return self.convert(result)

    async def _finish(self, pending: Any) -> Any:
        return self.convert(await pending)

    def convert(self, result: Any) -> Any:
        """A result in the form the core takes."""
        if type(result) is PyComplete:  # `Complete(last)`: the last value, then `complete`
            return PyComplete(to_jsonable(result.result, self.field.return_annotation))
        return to_jsonable(result, self.field.return_annotation)


class StreamResolver(CoreResolver):
    """The resolver of one stream subscription: hands the core the value its generator just
    yielded (or raises the generator's exception, as a field error)."""

    def __init__(self, field: SubscriptionField) -> None:
        super().__init__(field)
        self.result: Any = None
        self.error: BaseException | None = None

    def __call__(self, event: PyEvent, arguments: Mapping[str, Any], context: Any) -> Any:
        error, self.error = self.error, None
        if error is not None:
            raise error
        return self.convert(self.result)


async def run_stream(
    executor: PySubscriptionExecutor,
    subscription_key: str,
    channel: str,
    resolver: StreamResolver,
    args: Mapping[str, Any],
    context: ConnectionContext,
) -> None:
    """Runs a stream subscription's generator: each value becomes a `next`, its end a
    `complete`, an exception a field error then `complete`. Cancelled (client complete,
    disconnect, shutdown), the generator is closed, so its `finally` runs."""
    stream = resolver.field.open_stream(args, context)

    def feed() -> None:
        executor.publish_event("stream", channel, {}, context.tenant_id, context.user_id)

    try:
        async for value in stream:
            resolver.result = value
            feed()
            if not executor.is_active(subscription_key):  # ended (lagged) meanwhile
                return
        resolver.result = PyComplete()
    except Exception as error:  # the generator failed: a field error, then the end
        resolver.error = error
        feed()
        resolver.result = PyComplete()
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    feed()
