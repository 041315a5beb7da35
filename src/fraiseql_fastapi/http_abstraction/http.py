"""GraphQL over HTTP POST, shared by the adapters: queries and mutations (and introspection, so
tools such as GraphiQL and code generators can load the schema), and the `context_getter` that
gives them their `info.context`. Subscriptions need the WebSocket or an event stream
(`Accept: text/event-stream`, see `http_abstraction.sse`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..context import ConnectionContext

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from ..manager import SubscriptionManager

__all__ = ["ContextGetter", "execute_post", "get_request_context"]

#: `context_getter(request)`: the request context of a POST, an SSE request or a WebSocket
#: handshake (a database session, the current user): `info.context` of its queries and
#: mutations, `ConnectionContext.request_context` for its resolvers and the `context` of
#: `on_connect`. May be async. With FastAPI it is a dependency (`Depends` works in it, and its
#: `Request` parameter is the connection: declare it as `HTTPConnection` to serve both).
ContextGetter = Callable[..., Any]


async def get_request_context(getter: ContextGetter | None, request: HTTPConnection) -> Any:
    """What `getter` returns for `request` (awaited if need be); None without a getter."""
    if getter is None:
        return None
    value = getter(request)
    return await value if inspect.isawaitable(value) else value


async def execute_post(
    manager: SubscriptionManager, body: Any, request_context: Any = None
) -> tuple[int, dict[str, Any]]:
    """Runs a POSTed `{"query", "operationName", "variables"}` with `request_context` as its
    `info.context` (when not None); returns (status, result)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("query"), str):
        return 400, _errors("The body must be a JSON object with a string 'query'")
    variables = body.get("variables")
    operation_name = body.get("operationName")
    if variables is not None and not isinstance(variables, Mapping):
        return 400, _errors("'variables' must be an object")
    if operation_name is not None and not isinstance(operation_name, str):
        return 400, _errors("'operationName' must be a string")
    prepared = manager.prepare(body["query"], operation_name, variables)
    if isinstance(prepared, list):
        return 400, {"errors": manager.errors.format_all(prepared)}
    if prepared.kind == "subscription":
        return 400, _errors(
            "Subscriptions are served over WebSocket (graphql-transport-ws or graphql-ws) "
            "or Server-Sent Events (Accept: text/event-stream)"
        )
    return 200, await manager.execute(prepared, ConnectionContext(request_context=request_context))


def _errors(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}
