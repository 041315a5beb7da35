"""fraiseql-fastapi: GraphQL subscriptions for FastAPI and Starlette, with the per-event work
(registry, filtering, security checks, projection, queues) in the compiled Rust core
`fraiseql_core_rs`.

This release exposes the core's event bus configuration; the decorator, schema, manager and
framework adapters build on it.
"""

from fraiseql_core_rs import PyEventBusConfig as EventBusConfig

__version__ = "0.1.0"

__all__ = ["EventBusConfig", "__version__"]
