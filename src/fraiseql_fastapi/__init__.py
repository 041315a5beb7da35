"""fraiseql-fastapi: GraphQL subscriptions for FastAPI and Starlette, with the per-event work
(registry, filtering, security checks, projection, queues) in the compiled Rust core
`fraiseql_core_rs`.

```python
@subscription(channel="room:{room_id}")
async def message_posted(event, room_id: str, context) -> Message | None: ...

manager = SubscriptionManager(EventBusConfig.memory())
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager))
await manager.publish("room:42", {...}, event_type="messagePosted")
```
"""

from fraiseql_core_rs import PyComplete as Complete
from fraiseql_core_rs import PyEventBusConfig as EventBusConfig

from .context import ConnectionContext
from .decorator import ArgumentFilter, SubscriptionDefinitionError, subscription
from .hints import JSON
from .manager import SubscriptionManager
from .names import ID

__version__ = "0.1.0"

__all__ = [
    "ID",
    "JSON",
    "ArgumentFilter",
    "Complete",
    "ConnectionContext",
    "EventBusConfig",
    "SubscriptionDefinitionError",
    "SubscriptionManager",
    "__version__",
    "subscription",
]
