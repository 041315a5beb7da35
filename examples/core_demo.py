"""A tour of the Rust core on the in-memory bus, run by `scripts/demo`.

Three "connections" subscribe to a ticker with different selections and tenants; a sender task
per connection is woken by the core (no polling) and prints the frames it would send on its
WebSocket; a shared async resolver is called once per event for everyone.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fraiseql_core_rs.subscriptions import PyEvent, PyEventBusConfig, PySubscriptionExecutor


def phase1() -> None:
    print("== Phase 1: register, publish, next_event")
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
    frame = executor.next_event("sub1")
    print("frame:", frame)
    assert frame is not None
    assert json.loads(frame) == {
        "id": "sub1",
        "type": "next",
        "payload": {"data": {"users": {"id": "123"}}},
    }


async def ticker() -> None:
    print("\n== Ticker: three connections, two tenants, one async resolver call per event")
    executor = PySubscriptionExecutor(PyEventBusConfig.memory())
    calls = 0

    async def price(event: PyEvent, variables: Any, context: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)  # pretend to look something up
        return {**event.data, "symbol": variables["symbol"], "currency": "EUR"}

    senders = []
    for conn, tenant, query in [
        ("alice", "acme", "subscription ($symbol: String!) { ticks(symbol: $symbol) { value } }"),
        (
            "bob",
            "acme",
            "subscription ($symbol: String!) { t: ticks(symbol: $symbol) "
            "{ symbol value currency } }",
        ),
        ("carol", "globex", "subscription ($symbol: String!) { ticks(symbol: $symbol) { value } }"),
    ]:
        ready = asyncio.Event()
        executor.open_connection(conn, ready.set)
        executor.register_subscription(
            conn,
            f"{conn}-1",
            query,
            variables={"symbol": "FRQL"},
            tenant_id=tenant,
            user_id=conn,
            operation_id="1",
            channels=["ticks:FRQL"],
            resolver=price,
            resolver_scope="tenant",
        )
        senders.append(asyncio.create_task(send_loop(executor, conn, ready)))

    for value in (100, 101):
        delivered = await executor.publish_event_async(
            "tick", "ticks:FRQL", {"value": value}, tenant_id="acme"
        )
        print(f"published value={value} to tenant acme: {delivered} subscribers got a frame")
    delivered = await executor.publish_event_async("tick", "ticks:FRQL", {"value": 7})
    print(f"published value=7 to everyone: {delivered} subscribers got a frame")
    await asyncio.sleep(0.01)
    for task in senders:
        task.cancel()
    print(f"resolver calls: {calls} (one per event and tenant, not per subscriber)")
    for conn in ("alice", "bob", "carol"):
        executor.remove_connection(conn)
    metrics = executor.get_metrics()
    print("metrics:", {k: v for k, v in metrics.items() if v})


async def send_loop(executor: PySubscriptionExecutor, conn: str, ready: asyncio.Event) -> None:
    while True:
        await ready.wait()
        ready.clear()
        for text in executor.drain(conn):
            print(f"  -> {conn}: {text}")


if __name__ == "__main__":
    phase1()
    asyncio.run(ticker())
