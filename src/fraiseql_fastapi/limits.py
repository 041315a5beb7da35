"""Limits on what clients may take of a server, and their bookkeeping: how deep and how large a
document may be (checked when it is validated, `query_limits`), how fast one connection may
start operations (`RateLimit`, the generic cell rate algorithm), and how many connections and live
subscriptions one user or tenant may hold in this process (`Quotas`). Every refusal is
counted by the limit's name (`SubscriptionManager.get_metrics()["limited"]`,
`fraiseql_limited_total{limit}`).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from graphql import GraphQLError

if TYPE_CHECKING:
    from .connection import Connection
    from .context import ConnectionContext

__all__ = ["Limit", "Limits", "Quotas", "RateLimit", "limited_error"]


class Limit(str, Enum):
    """The name a refusal is counted under."""

    QUERY_DEPTH = "query_depth"
    QUERY_FIELDS = "query_fields"
    SUBSCRIBE_RATE = "subscribe_rate"
    CONNECTIONS_PER_USER = "connections_per_user"
    CONNECTIONS_PER_TENANT = "connections_per_tenant"
    SUBSCRIPTIONS_PER_USER = "subscriptions_per_user"
    SUBSCRIPTIONS_PER_TENANT = "subscriptions_per_tenant"


@dataclass(frozen=True)
class Limits:
    """What one process allows (None: no limit). Documents: `max_query_depth` levels of
    fields (the operation's root fields are level 1) and `max_query_fields` fields with every
    fragment spread counted where it is used (GraphiQL's introspection query is 15 deep, with
    220 fields). Users and tenants, across every route of the manager: connections (an SSE
    stream counts as one) and live subscriptions, by the `user_id` and `tenant_id` that
    `on_connect` gave; anonymous connections are limited per connection only
    (`ProtocolOptions`)."""

    max_query_depth: int | None = 20
    max_query_fields: int | None = 1000
    max_connections_per_user: int | None = 100
    max_connections_per_tenant: int | None = None
    max_subscriptions_per_user: int | None = 1000
    max_subscriptions_per_tenant: int | None = None


def limited_error(message: str) -> GraphQLError:
    """The error of an operation refused by a rate limit (code RATE_LIMITED)."""
    return GraphQLError(message, extensions={"code": "RATE_LIMITED"})


class RateLimit:
    """A rate: `rate` operations per second on average, `burst` at once. The state of what it
    limits is one timestamp (the generic cell rate algorithm's theoretical arrival time), kept
    by its user; this object is shared by all of them."""

    __slots__ = ("burst", "interval", "rate", "tolerance")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval

    def admit(self, arrival: float | None) -> float | None:
        """The next theoretical arrival time when one more may go now (`arrival`: the last
        one returned, None at first); None when it must be refused."""
        now = time.monotonic()
        if arrival is None or arrival < now:
            arrival = now
        if arrival - now > self.tolerance:
            return None
        return arrival + self.interval


@dataclass
class Quotas:
    """The connections of each user and tenant in this process, and what `limits` lets them
    hold. A connection is admitted once (its identity then stays: see
    `ConnectionContext.may_become`) and released when it closes."""

    limits: Limits
    limited: collections.Counter[str]
    _users: dict[str, set[Connection]] = field(default_factory=dict)
    _tenants: dict[str, set[Connection]] = field(default_factory=dict)

    def admit(self, connection: Connection, context: ConnectionContext) -> Limit | None:
        """Counts `connection` for `context`'s user and tenant; the limit it would pass
        (nothing counted) or None."""
        limits = self.limits
        checks = (
            (self._users, context.user_id, limits.max_connections_per_user,
             Limit.CONNECTIONS_PER_USER),
            (self._tenants, context.tenant_id, limits.max_connections_per_tenant,
             Limit.CONNECTIONS_PER_TENANT),
        )  # fmt: skip
        for table, key, most, name in checks:
            if key is not None and most is not None and len(table.get(key, ())) >= most:
                self.limited[name.value] += 1
                return name
        for table, key, _, _ in checks:
            if key is not None:
                table.setdefault(key, set()).add(connection)
        return None

    def release(self, connection: Connection) -> None:
        context = connection.context
        for table, key in ((self._users, context.user_id), (self._tenants, context.tenant_id)):
            members = table.get(key) if key is not None else None
            if members is not None:
                members.discard(connection)
                if not members:
                    del table[key]  # type: ignore[arg-type]

    def subscription_refused(self, context: ConnectionContext) -> GraphQLError | None:
        """The error for one more subscription of `context`'s user or tenant, if it would
        pass their limit; None when it may."""
        limits = self.limits
        checks = (
            (self._users, context.user_id, limits.max_subscriptions_per_user,
             Limit.SUBSCRIPTIONS_PER_USER, "user"),
            (self._tenants, context.tenant_id, limits.max_subscriptions_per_tenant,
             Limit.SUBSCRIPTIONS_PER_TENANT, "tenant"),
        )  # fmt: skip
        for table, key, most, name, who in checks:
            if key is None or most is None:
                continue
            if _live(table.get(key, ())) >= most:
                self.limited[name.value] += 1
                return GraphQLError(
                    f"Too many subscriptions for this {who} (at most {most})",
                    extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
                )
        return None


def _live(connections: Iterable[Connection]) -> int:
    return sum(connection.live_count for connection in connections)
