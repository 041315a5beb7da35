"""The security context of a connection: who is connected, as established by `on_connect`.

Resolvers receive it as `context`; the Rust core uses its `user_id` and `tenant_id` to keep each
tenant's and user's events to themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConnectionContext:
    """Who a connection acts for. `on_connect` returns one (or a dict with the same keys).

    `ack_payload`, when set, is sent as the payload of `connection_ack`. `claims` holds anything
    else the application wants its resolvers to see. `request_context` is what the route's
    `context_getter` returned for the request that opened the connection (the WebSocket
    handshake, the SSE or POST request): queries and mutations get it as `info.context`,
    resolvers that take `context` find it here. It is filled in after `on_connect` returns.
    """

    user_id: str | None = None
    tenant_id: str | None = None
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)
    ack_payload: Mapping[str, Any] | None = None
    request_context: Any = None

    @classmethod
    def from_value(cls, value: object) -> ConnectionContext:
        """Builds a context from what `on_connect` returned: a context, a dict, or True/None
        (an anonymous connection). Raises TypeError for anything else."""
        if isinstance(value, ConnectionContext):
            return value
        if value is None or value is True:
            return cls()
        if isinstance(value, Mapping):
            known = {"user_id", "tenant_id", "roles", "permissions", "claims", "ack_payload"}
            unknown = {k: v for k, v in value.items() if k not in known}
            return cls(
                user_id=_optional_str(value.get("user_id")),
                tenant_id=_optional_str(value.get("tenant_id")),
                roles=frozenset(value.get("roles") or ()),
                permissions=frozenset(value.get("permissions") or ()),
                claims={**dict(value.get("claims") or {}), **unknown},
                ack_payload=value.get("ack_payload"),
            )
        raise TypeError(
            f"on_connect must return a ConnectionContext, a dict, True, None or False; "
            f"got {type(value).__name__}"
        )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
