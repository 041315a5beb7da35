"""The security context of a connection: who is connected, as established by `on_connect`.

Resolvers receive it as `context`; the Rust core uses its `user_id` and `tenant_id` to keep each
tenant's and user's events to themselves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ConnectionContext:
    """Who a connection acts for. `on_connect` returns one (or a dict with the same keys).

    `ack_payload`, when set, is sent as the payload of `connection_ack`. `claims` holds anything
    else the application wants its resolvers to see. `request_context` is what the route's
    `context_getter` returned for the request that opened the connection (the WebSocket
    handshake, the SSE or POST request): queries and mutations get it as `info.context`,
    resolvers that take `context` find it here. It is filled in after `on_connect` returns.

    `expires_at` is when the credentials it was established from stop being valid (a Unix
    timestamp in seconds, as a JWT's `exp`, or an aware `datetime`): the server then closes
    the connection (4403, "Token expired") or ends the SSE stream, unless the client has
    refreshed them first (`on_refresh`). None: they do not expire.
    """

    user_id: str | None = None
    tenant_id: str | None = None
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)
    ack_payload: Mapping[str, Any] | None = None
    request_context: Any = None
    expires_at: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "expires_at", _timestamp(self.expires_at))

    def seconds_left(self) -> float | None:
        """How long until `expires_at` (negative once it passed); None when it never comes."""
        return None if self.expires_at is None else self.expires_at - time.time()

    def is_expired(self) -> bool:
        """True once `expires_at` has passed."""
        left = self.seconds_left()
        return left is not None and left <= 0

    def may_become(self, refreshed: ConnectionContext) -> bool:
        """True when `refreshed` may replace this context on a live connection: the same user
        and tenant (its subscriptions were registered for them), and no role or permission
        taken away (its subscriptions were allowed by them)."""
        return (
            refreshed.user_id == self.user_id
            and refreshed.tenant_id == self.tenant_id
            and self.roles <= refreshed.roles
            and self.permissions <= refreshed.permissions
        )

    @classmethod
    def from_value(cls, value: object) -> ConnectionContext:
        """Builds a context from what `on_connect` returned: a context, a dict, or True/None
        (an anonymous connection). Raises TypeError for anything else."""
        if isinstance(value, ConnectionContext):
            return value
        if value is None or value is True:
            return cls()
        if isinstance(value, Mapping):
            known = {
                "user_id",
                "tenant_id",
                "roles",
                "permissions",
                "claims",
                "ack_payload",
                "expires_at",
            }
            unknown = {k: v for k, v in value.items() if k not in known}
            return cls(
                user_id=_optional_str(value.get("user_id")),
                tenant_id=_optional_str(value.get("tenant_id")),
                roles=frozenset(value.get("roles") or ()),
                permissions=frozenset(value.get("permissions") or ()),
                claims={**dict(value.get("claims") or {}), **unknown},
                ack_payload=value.get("ack_payload"),
                expires_at=value.get("expires_at"),
            )
        raise TypeError(
            f"on_connect must return a ConnectionContext, a dict, True, None or False; "
            f"got {type(value).__name__}"
        )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _timestamp(value: object) -> float | None:
    """`expires_at` as a Unix timestamp. Raises TypeError for anything but None, a finite
    number or an aware datetime (a naive one has no instant to expire at)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("expires_at must be an aware datetime (with a tzinfo)")
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise TypeError(
        f"expires_at must be a Unix timestamp or an aware datetime; got {type(value).__name__}"
    )
