"""Resume after reconnect: each `next` of a subscription that asks carries `extensions.cursor`;
a client that reconnects subscribes with `extensions.resumeFrom` and receives every event it
missed, in order and once each, then the live ones; a cursor the history no longer covers gets
a RESUME_GAP field error first. Over real sockets, on the in-memory bus here (Redis and
PostgreSQL: tests/test_resume_buses.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from helpers import COUNTER, counters, js_clients, node_client, running_server, until, ws_client

from fraiseql_fastapi import EventBusConfig, SubscriptionManager
from fraiseql_fastapi.http_abstraction import ProtocolOptions
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

pytestmark = pytest.mark.anyio

RESUME = {"resume": True}


@contextlib.asynccontextmanager
async def server(
    bus: Any = None, **manager_options: Any
) -> AsyncIterator[tuple[str, SubscriptionManager]]:
    from fastapi import FastAPI

    manager = SubscriptionManager(bus, subscriptions=counters.fields, **manager_options)
    app = FastAPI(lifespan=manager.lifespan)
    options = ProtocolOptions(ping_interval=None, keepalive_interval=None, sse=True)
    app.include_router(SubscriptionRouterFactory.create(manager, options=options))
    async with running_server(app) as address:
        yield address, manager


async def publish(manager: SubscriptionManager, *numbers: int) -> None:
    for n in numbers:
        await manager.publish("counter", {"n": n}, event_type="e")


async def received(client: Any, count: int) -> list[tuple[Any, Any]]:
    """(data, cursor) of the next `count` results."""
    out = []
    for _ in range(count):
        message = await client.receive()
        assert message["type"] == "next", message
        payload = message["payload"]
        out.append((payload["data"], payload.get("extensions", {}).get("cursor")))
    return out


async def test_a_resumed_subscription_gets_what_it_missed_then_the_live_events() -> None:
    async with server() as (address, manager):
        async with ws_client(address) as client:
            await client.init()
            await client.subscribe("1", COUNTER, extensions=RESUME)
            await until(lambda: manager.get_metrics()["subscribers"] == 1)
            await publish(manager, 1, 2, 3)
            got = await received(client, 3)
            assert [data for data, _ in got] == [{"counter": n} for n in (1, 2, 3)]
            cursors = [cursor for _, cursor in got]
            assert all(isinstance(c, str) and c for c in cursors)
            assert len(set(cursors)) == 3
        await publish(manager, 4, 5)  # while away
        async with ws_client(address) as client:
            await client.init()
            await client.subscribe("1", COUNTER, extensions={"resumeFrom": cursors[1]})
            got = await received(client, 3)  # 3 again: it came after the cursor
            assert [data["counter"] for data, _ in got] == [3, 4, 5]
            await publish(manager, 6)
            ((data, cursor),) = await received(client, 1)
            assert data == {"counter": 6}
            last = cursor
            with pytest.raises(TimeoutError):
                await client.receive(timeout=0.2)  # nothing twice
        # Resuming from the newest cursor: nothing to replay, then live.
        async with ws_client(address) as client:
            await client.init()
            await client.subscribe("1", COUNTER, extensions={"resumeFrom": last})
            await until(lambda: manager.get_metrics()["subscribers"] == 1)
            await publish(manager, 7)
            assert [d for d, _ in await received(client, 1)] == [{"counter": 7}]
        metrics = manager.get_metrics()
        assert metrics["events_replayed"] == 3
        assert metrics["resume_gaps"] == 0


async def test_without_asking_there_are_no_cursors_unless_the_server_gives_them() -> None:
    async with server() as (address, manager), ws_client(address) as client:
        await client.init()
        await client.subscribe("1", COUNTER)
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await publish(manager, 1)
        message = await client.receive()
        assert message["payload"] == {"data": {"counter": 1}}
    async with server(positions=True) as (address, manager), ws_client(address) as client:
        await client.init()
        await client.subscribe("1", COUNTER)
        await client.subscribe("2", COUNTER, extensions={"resume": False})
        await until(lambda: manager.get_metrics()["subscribers"] == 2)
        await publish(manager, 1)
        by_id = {}
        for _ in range(2):
            message = await client.receive()
            by_id[message["id"]] = message["payload"]
        assert by_id["1"]["extensions"]["cursor"]
        assert by_id["2"] == {"data": {"counter": 1}}


async def test_a_cursor_the_history_no_longer_covers_is_a_resume_gap_then_live() -> None:
    async with server(EventBusConfig.memory(history=2)) as (address, manager):
        async with ws_client(address) as client:
            await client.init()
            await client.subscribe("1", COUNTER, extensions=RESUME)
            await until(lambda: manager.get_metrics()["subscribers"] == 1)
            await publish(manager, 1)
            ((_, cursor),) = await received(client, 1)
        await publish(manager, 2, 3, 4)  # 2 falls out of a history of 2
        for stale in (cursor, "m0.1"):  # pruned, another epoch (a restarted server)
            async with ws_client(address) as client:
                await client.init()
                await client.subscribe("1", COUNTER, extensions={"resumeFrom": stale})
                gap = await client.receive()
                assert gap["type"] == "next"
                assert gap["payload"]["data"] is None
                (error,) = gap["payload"]["errors"]
                assert error["extensions"] == {"code": "RESUME_GAP"}
                assert error["path"] == ["counter"]
                await publish(manager, 5)
                assert [d for d, _ in await received(client, 1)] == [{"counter": 5}]
        assert manager.get_metrics()["resume_gaps"] == 2


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ({"resumeFrom": "not-a-cursor"}, "resumeFrom is not a cursor this server issued"),
        ({"resumeFrom": 12}, "extensions.resumeFrom must be a cursor"),
        ({"resumeFrom": "m1." + "9" * 5000}, "resumeFrom is not a cursor this server issued"),
        ({"resume": "yes"}, "extensions.resume must be true or false"),
    ],
)
async def test_a_bad_resume_request_is_an_error_for_its_operation(
    extensions: dict[str, Any], message: str
) -> None:
    async with server() as (address, manager), ws_client(address) as client:
        await client.init()
        await client.subscribe("1", COUNTER, extensions=extensions)
        error = await client.receive()
        assert error["type"] == "error"
        assert error["payload"][0]["message"].startswith(message)
        await client.subscribe("2", COUNTER)  # the connection goes on
        await until(lambda: manager.get_metrics()["subscribers"] == 1)


async def test_the_legacy_protocol_resumes_too() -> None:
    async with server() as (address, manager):
        async with ws_client(address, subprotocols=["graphql-ws"]) as client:
            await client.init()
            await client.send(
                {"id": "1", "type": "start", "payload": {"query": COUNTER, "extensions": RESUME}}
            )
            await until(lambda: manager.get_metrics()["subscribers"] == 1)
            await publish(manager, 1)
            message = await client.receive()
            while message["type"] == "ka":
                message = await client.receive()
            assert message["type"] == "data"
            cursor = message["payload"]["extensions"]["cursor"]
        await publish(manager, 2)
        async with ws_client(address, subprotocols=["graphql-ws"]) as client:
            await client.init()
            await client.send(
                {
                    "id": "1",
                    "type": "start",
                    "payload": {"query": COUNTER, "extensions": {"resumeFrom": cursor}},
                }
            )
            message = await client.receive()
            while message["type"] == "ka":
                message = await client.receive()
            assert message["payload"]["data"] == {"counter": 2}


async def sse_events(response: httpx.Response, count: int) -> list[dict[str, str]]:
    """The next `count` events of an SSE response, as field -> value."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if fields:
                events.append(fields)
                fields = {}
                if len(events) == count:
                    return events
            continue
        if line.startswith(":"):
            continue  # a comment (keep-alive)
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
    return events


async def test_an_sse_stream_resumes_from_last_event_id() -> None:
    async with server() as (address, manager):
        base = f"http://{address}/graphql"
        stream_headers = {"accept": "text/event-stream"}
        body = {"query": COUNTER, "extensions": RESUME}
        async with httpx.AsyncClient(timeout=10) as http:
            async with http.stream("POST", base, json=body, headers=stream_headers) as response:
                await until(lambda: manager.get_metrics()["subscribers"] == 1)
                await publish(manager, 1)
                (event,) = await sse_events(response, 1)
            assert event["event"] == "next"
            data = orjson.loads(event["data"])
            assert event["id"] == data["extensions"]["cursor"]
            await publish(manager, 2, 3)
            # What EventSource does when it reconnects: the same request, with Last-Event-ID.
            headers = {**stream_headers, "last-event-id": event["id"]}
            body = {"query": COUNTER}
            async with http.stream("POST", base, json=body, headers=headers) as response:
                events = await sse_events(response, 2)
            assert [orjson.loads(e["data"])["data"]["counter"] for e in events] == [2, 3]


@js_clients
async def test_the_readme_recipe_resumes_a_graphql_ws_client_after_a_network_drop() -> None:
    async with (
        server() as (address, manager),
        node_client("graphql_ws_client.mjs", f"ws://{address}/graphql", "resume") as node,
    ):
        await node.expect("connected")
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await publish(manager, 1, 2)
        got = [(await node.expect("next"))["data"]["counter"] for _ in range(2)]
        await node.tell("kill")
        await until(lambda: manager.get_metrics()["subscribers"] == 0)
        await publish(manager, 3, 4, 5)  # while it is away
        await node.expect("connected")  # the client reconnected and resubscribed by itself
        got += [(await node.expect("next"))["data"]["counter"] for _ in range(3)]
        await publish(manager, 6)
        got.append((await node.expect("next"))["data"]["counter"])
        assert got == [1, 2, 3, 4, 5, 6]
        assert manager.get_metrics()["events_replayed"] == 3
        await node.tell("exit")
