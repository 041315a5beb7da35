"""Production: no GraphiQL page, no introspection (docs/guides/graphiql.md)."""

from fastapi import FastAPI

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()


@subscription(channel="ticks", registry=registry)
def ticks(event) -> int:
    """A number per event."""
    return int(event.data["n"])


# --8<-- [start:production]
manager = SubscriptionManager(
    EventBusConfig.memory(), subscriptions=registry.fields, introspection=False
)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, graphiql=False))
# --8<-- [end:production]
