"""Resolver sharing scopes: four views of one price feed, each resolver shared as widely as
its result allows.

uvicorn app:app
"""

import collections

from fastapi import FastAPI
from pydantic import BaseModel

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()

#: token -> (user, tenant): your identity provider in a real application.
TOKENS = {"ann": ("ann", "acme"), "bob": ("bob", "acme"), "carol": ("carol", "globex")}
#: Each tenant's currency, per dollar; each user's shares.
RATES = {"acme": 1.0, "globex": 0.5}
HOLDINGS = {"ann": 10, "bob": 3, "carol": 7}

#: Resolver calls, by field name: how many calls each event costs.
calls: collections.Counter[str] = collections.Counter()
#: What the per-subscription resolver recorded: (user, price), once per subscription.
audit: list[tuple[str, float]] = []


class Quote(BaseModel):
    symbol: str
    price: float


# --8<-- [start:scopes]
@subscription(channel="quotes:{symbol}", registry=registry)
def quote(event, symbol: str) -> Quote:
    """The price: the same for everyone. No `context`: one call per event for all."""
    calls["quote"] += 1
    return Quote(symbol=symbol, price=event.data["price"])


@subscription(channel="quotes:{symbol}", scope="tenant", registry=registry)
def local_quote(event, symbol: str, context) -> Quote:
    """The price in the tenant's currency: one call per tenant."""
    calls["localQuote"] += 1
    return Quote(symbol=symbol, price=event.data["price"] * RATES[context.tenant_id])


@subscription(channel="quotes:{symbol}", registry=registry)  # scope="user", the default
def holding(event, symbol: str, context) -> Quote:
    """The value of the user's shares: one call per user."""
    calls["holding"] += 1
    return Quote(symbol=symbol, price=event.data["price"] * HOLDINGS[context.user_id])


@subscription(channel="quotes:{symbol}", scope="subscription", registry=registry)
def audited_quote(event, symbol: str, context) -> Quote:
    """The price, with a record of each delivery: one call per subscription."""
    calls["auditedQuote"] += 1
    audit.append((context.user_id, event.data["price"]))
    return Quote(symbol=symbol, price=event.data["price"])


# --8<-- [end:scopes]


def on_connect(payload, websocket):
    """`connection_init`: the token names the user and their tenant; no token: anonymous."""
    token = (payload or {}).get("token")
    if token is None:
        return True
    account = TOKENS.get(token)
    if account is None:
        return False
    user_id, tenant_id = account
    return {"user_id": user_id, "tenant_id": tenant_id}


manager = SubscriptionManager(EventBusConfig.memory(), subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, on_connect=on_connect))
