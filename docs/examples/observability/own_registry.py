"""The manager's metrics in a registry of your own, next to the application's metrics
(docs/guides/prometheus-and-logs.md).

uvicorn own_registry:app
"""

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.responses import Response

from fraiseql_fastapi import EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory
from fraiseql_fastapi.metrics import PrometheusCollector

registry = SubscriptionRegistry()


@subscription(channel="orders", registry=registry)
def order_placed(event) -> str:
    """The id of each order placed."""
    return str(event.data["id"])


manager = SubscriptionManager(EventBusConfig.memory(), subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager, path="/graphql"))

# --8<-- [start:registry]
metrics = CollectorRegistry()
metrics.register(PrometheusCollector(manager))  # read from manager.get_metrics() when scraped
orders = Counter("shop_orders_total", "Orders placed", registry=metrics)  # the app's own


@app.get("/metrics", include_in_schema=False)
def scrape() -> Response:
    return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)


# --8<-- [end:registry]
