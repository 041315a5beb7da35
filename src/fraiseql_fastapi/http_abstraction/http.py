"""GraphQL over HTTP POST, shared by the adapters: queries and introspection, so tools such as
GraphiQL and code generators can load the schema. Subscriptions need the WebSocket or an
event stream (`Accept: text/event-stream`, see `http_abstraction.sse`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..manager import SubscriptionManager


async def execute_post(manager: SubscriptionManager, body: Any) -> tuple[int, dict[str, Any]]:
    """Runs a POSTed `{"query", "operationName", "variables"}`; returns (status, result)."""
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
    return 200, await manager.execute(prepared)


def _errors(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}
