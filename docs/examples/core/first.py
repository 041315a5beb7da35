"""The core on its own: register a subscription, publish an event, read the frame."""

import json

from fraiseql_core_rs import PySubscriptionExecutor

executor = PySubscriptionExecutor()
executor.register_subscription(
    connection_id="conn1",
    subscription_id="sub1",
    query="subscription { users { id } }",
    operation_name=None,
    variables={},
    user_id="user1",
    tenant_id="tenant1",
)
executor.publish_event(
    event_type="userCreated", channel="users", data={"id": "123", "name": "Alice"}
)
frame = executor.next_event("sub1")  # bytes: a complete graphql-transport-ws message
assert frame is not None
assert json.loads(frame) == {
    "id": "sub1",
    "type": "next",
    "payload": {"data": {"users": {"id": "123"}}},
}
print(executor.get_metrics())
