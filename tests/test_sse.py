"""GraphQL over Server-Sent Events (graphql-sse PROTOCOL.md) against a real uvicorn server:
both modes with httpx streaming, the status codes, authentication and the binding of tokens,
limits, keep-alive, disconnects and shutdown; the real graphql-sse client (Node) in both modes;
and a property test of the protocol's request decisions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from fastapi import FastAPI
from helpers import (
    NodeClient,
    free_port,
    js_clients,
    node_client,
    protocol_app,
    running_server,
    until,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from fraiseql_fastapi import ConnectionContext, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction import ProtocolOptions
from fraiseql_fastapi.http_abstraction.starlette import create_subscription_app
from fraiseql_fastapi.protocols.sse import (
    TOKEN_HEADER,
    Distinct,
    Execute,
    Listen,
    Reply,
    Reserve,
    SSERequest,
    Stop,
    decide,
    wants_sse,
)

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()


@dataclass
class Message:
    """A chat message."""

    id: str
    room_id: str
    text: str


@subscription(channel="room:{room_id}", registry=registry)
async def message_posted(event: Any, room_id: str, context: Any) -> Message | None:
    """New messages in a room."""
    return Message(id=event.data["id"], room_id=event.data["room_id"], text=event.data["text"])


@subscription(registry=registry, channel="counter")
def counter(event: Any) -> int:
    """A number per event."""
    return int(event.data["n"])


@subscription(registry=registry, channel="secret", roles="admin")
def secret(event: Any) -> int:
    """Admins only."""
    return int(event.data["n"])


USERS: dict[str, ConnectionContext] = {
    "alice": ConnectionContext(user_id="alice", tenant_id="acme"),
    "alice-admin": ConnectionContext(user_id="alice", tenant_id="acme", roles=frozenset({"admin"})),
    "carol": ConnectionContext(user_id="carol", tenant_id="acme"),
    "bob": ConnectionContext(user_id="bob", tenant_id="globex"),
}


def authenticate(payload: Any, request: Any) -> Any:
    """Over SSE the payload is None: who it is comes from the request (header or cookie)."""
    assert payload is None
    name = request.headers.get("authorization", "").removeprefix("Bearer ")
    name = name or request.cookies.get("session", "")
    if name == "denied":
        return False
    if name == "raise":
        raise PermissionError("not you")
    return USERS.get(name, True)


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {name}"}


ROOM = "subscription ($room: String!) { messagePosted(roomId: $room) { id text } }"
COUNTER = "subscription { counter }"
EVENT_STREAM = {"accept": "text/event-stream"}
DEFAULTS: dict[str, Any] = {"keepalive_interval": None, "ping_interval": None}


def make_app(max_queue: int = 1000, **options: Any) -> tuple[FastAPI, SubscriptionManager]:
    return protocol_app(registry.fields, authenticate, max_queue, **{**DEFAULTS, **options})


@contextlib.asynccontextmanager
async def server(
    max_queue: int = 1000, **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, SubscriptionManager]]:
    app, manager = make_app(max_queue, **options)
    async with (
        running_server(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
    ):
        yield http, manager


def metric(manager: SubscriptionManager, name: str) -> int:
    value: int = manager.get_metrics()[name]
    return value


async def released(manager: SubscriptionManager) -> None:
    """Nothing is left of any stream: in the core and in the manager."""
    await until(
        lambda: (
            metric(manager, "active_subscriptions") == 0
            and metric(manager, "active_connections") == 0
            and metric(manager, "queued_frames") == 0
            and not manager.connections
        )
    )


class Events:
    """Reads an event stream record by record: {"event", "data"} (data parsed as JSON when
    there is some), or {"comment": ...} for a comment."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def record(self, timeout: float = 5.0) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            fields: dict[str, Any] = {}
            while True:
                line = await self._lines.__anext__()
                if line == "":
                    if fields:
                        return fields
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    fields.setdefault("comment", value)
                else:
                    fields[name] = value

        record = await asyncio.wait_for(read(), timeout)
        if record.get("data"):
            record["data"] = json.loads(record["data"])
        return record

    async def event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next record that is not a comment."""
        while True:
            record = await self.record(timeout)
            if "comment" not in record:
                return record

    async def ended(self, timeout: float = 5.0) -> bool:
        """True when the response ends (with nothing but comments before its end)."""
        try:
            await self.event(timeout)
        except StopAsyncIteration:
            return True
        return False


@contextlib.asynccontextmanager
async def stream(
    http: httpx.AsyncClient,
    method: str = "POST",
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> AsyncIterator[tuple[httpx.Response, Events]]:
    async with http.stream(
        method, "/graphql", headers={**EVENT_STREAM, **(headers or {})}, **kwargs
    ) as response:
        yield response, Events(response)


def next_data(record: dict[str, Any]) -> Any:
    assert record["event"] == "next", record
    return record["data"]


async def publish_counter(manager: SubscriptionManager, values: range | list[int]) -> None:
    for n in values:
        await manager.publish("counter", {"n": n})


# --- distinct connections mode ----------------------------------------------------------------


async def test_distinct_subscription_over_post_delivers_in_order() -> None:
    async with server() as (http, manager), stream(http, json={"query": COUNTER}) as (r, events):
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache"
        await until(lambda: metric(manager, "active_subscriptions") == 1)
        await publish_counter(manager, range(50))
        got = [next_data(await events.event()) for _ in range(50)]
        assert got == [{"data": {"counter": n}} for n in range(50)]


async def test_distinct_subscription_over_get_with_variables() -> None:
    async with server() as (http, manager):
        params = {"query": ROOM, "variables": json.dumps({"room": "7"})}
        async with stream(http, "GET", params=params, headers=bearer("alice")) as (r, events):
            assert r.status_code == 200
            await until(lambda: metric(manager, "active_subscriptions") == 1)
            message = {"id": "1", "room_id": "7", "text": "hi"}
            await manager.publish("room:7", message, event_type="messagePosted")
            assert next_data(await events.event()) == {
                "data": {"messagePosted": {"id": "1", "text": "hi"}}
            }


async def test_distinct_query_is_one_next_then_complete() -> None:
    async with server() as (http, manager):
        async with stream(http, json={"query": "{ __typename }"}) as (r, events):
            assert r.status_code == 200
            assert next_data(await events.event()) == {"data": {"__typename": "Query"}}
            assert await events.event() == {"event": "complete", "data": ""}
            assert await events.ended()
        await released(manager)


async def test_distinct_validation_errors_come_on_the_stream() -> None:
    async with server() as (http, manager):
        for query in ("subscription { nope }", "subscription {", "mutation { x }"):
            async with stream(http, json={"query": query}) as (r, events):
                assert r.status_code == 200
                data = next_data(await events.event())
                assert set(data) == {"errors"} and data["errors"][0]["message"]
                assert await events.event() == {"event": "complete", "data": ""}
                assert await events.ended()
        # Variables that do not coerce, and a field the connection may not subscribe to.
        body = {"query": ROOM, "variables": {"room": 5}}
        async with stream(http, json=body) as (_, events):
            assert "errors" in next_data(await events.event())
            assert (await events.event())["event"] == "complete"
        async with stream(http, json={"query": "subscription { secret }"}) as (_, events):
            errors = next_data(await events.event())["errors"]
            assert errors[0]["extensions"] == {"code": "FORBIDDEN"}
            assert (await events.event())["event"] == "complete"
        await released(manager)


@pytest.mark.parametrize(
    ("method", "kwargs", "status"),
    [
        ("POST", {"json": {"variables": {}}}, 400),
        ("POST", {"json": ["not", "an", "object"]}, 400),
        ("POST", {"json": {"query": 1}}, 400),
        ("POST", {"json": {"query": COUNTER, "variables": [1]}}, 400),
        ("POST", {"json": {"query": COUNTER, "operationName": 3}}, 400),
        ("POST", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ("POST", {"content": b"query=x", "headers": {"content-type": "text/plain"}}, 415),
        ("GET", {"params": {}}, 400),
        ("GET", {"params": {"query": COUNTER, "variables": "{nope"}}, 400),
        ("GET", {"params": {"query": "mutation { x }"}}, 405),
    ],
)
async def test_distinct_bad_requests(method: str, kwargs: dict[str, Any], status: int) -> None:
    async with server() as (http, manager):
        headers = {**EVENT_STREAM, **kwargs.pop("headers", {})}
        response = await http.request(method, "/graphql", headers=headers, **kwargs)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert response.json()["errors"][0]["message"]
        if status == 405:
            assert response.headers["allow"] in ("POST", "GET, POST, PUT, DELETE")
        await released(manager)


async def test_plain_post_is_still_a_query_and_browsers_still_get_graphiql() -> None:
    async with server() as (http, manager):
        response = await http.post("/graphql", json={"query": "{ __typename }"})
        assert response.status_code == 200
        assert response.json() == {"data": {"__typename": "Query"}}
        page = await http.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200 and "<html" in page.text
        async with stream(http, "GET", params={"query": "{ __typename }"}) as (r, events):
            assert r.status_code == 200
            assert next_data(await events.event()) == {"data": {"__typename": "Query"}}
        await released(manager)


async def test_starlette_route_serves_both_modes() -> None:
    manager = SubscriptionManager(subscriptions=registry.fields)
    app = create_subscription_app(
        Starlette(lifespan=manager.lifespan), manager, on_connect=authenticate
    )
    async with (
        running_server(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
    ):
        async with stream(http, json={"query": COUNTER}) as (r, events):
            assert r.status_code == 200
            await until(lambda: metric(manager, "active_subscriptions") == 1)
            await publish_counter(manager, [1])
            assert next_data(await events.event()) == {"data": {"counter": 1}}
        token = (await http.put("/graphql")).text
        async with stream(http, "GET", headers={TOKEN_HEADER: token}) as (r, events):
            assert r.status_code == 200
            body = {"query": "{ __typename }", "extensions": {"operationId": "q"}}
            posted = await http.post("/graphql", json=body, headers={TOKEN_HEADER: token})
            assert posted.status_code == 202
            assert next_data(await events.event())["id"] == "q"
        page = await http.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200 and "<html" in page.text
        # The route answers every method; those the protocol does not have get its 405.
        patch = await http.patch("/graphql", json={"query": COUNTER}, headers=EVENT_STREAM)
        assert patch.status_code == 405
        assert patch.headers["allow"] == "GET, POST, PUT, DELETE"
        await released(manager)


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["denied", "raise"])
async def test_refused_requests_get_403_and_nothing_is_streamed(user: str) -> None:
    async with server() as (http, manager):
        refused = {**EVENT_STREAM, **bearer(user)}
        for method, kwargs in [
            ("POST", {"json": {"query": COUNTER}, "headers": refused}),
            ("GET", {"params": {"query": COUNTER}, "headers": refused}),
            ("PUT", {"headers": bearer(user)}),
        ]:
            response = await http.request(method, "/graphql", **kwargs)
            assert response.status_code == 403
            assert response.headers["content-type"] == "application/json; charset=utf-8"
            assert response.json() == {"errors": [{"message": "Forbidden"}]}
        async with httpx.AsyncClient(base_url=http.base_url, cookies={"session": user}) as other:
            response = await other.get("/graphql", params={"query": COUNTER}, headers=EVENT_STREAM)
            assert response.status_code == 403
        assert metric(manager, "subscriptions_registered") == 0
        await released(manager)


async def test_cookies_authenticate_too() -> None:
    async with server() as (http, manager):
        http.cookies.set("session", "bob")
        body = {"query": ROOM, "variables": {"room": "1"}}
        async with stream(http, json=body) as (_, events):
            await until(lambda: metric(manager, "active_subscriptions") == 1)
            data = {"id": "1", "room_id": "1", "text": "for bob"}
            await manager.publish("room:1", data, event_type="messagePosted", tenant_id="globex")
            assert next_data(await events.event())["data"]["messagePosted"]["text"] == "for bob"


async def test_tenant_isolation_in_both_modes() -> None:
    async with server() as (http, manager):
        body = {"query": ROOM, "variables": {"room": "1"}}
        token = (await http.put("/graphql", headers=bearer("bob"))).text
        async with (
            stream(http, json=body, headers=bearer("alice")) as (_, alice),
            stream(http, "GET", headers={**bearer("bob"), TOKEN_HEADER: token}) as (_, bob),
        ):
            single = {**body, "extensions": {"operationId": "b"}}
            headers = {**bearer("bob"), TOKEN_HEADER: token}
            assert (await http.post("/graphql", json=single, headers=headers)).status_code == 202
            await until(lambda: metric(manager, "active_subscriptions") == 2)
            for tenant in ("acme", "globex", "initech"):
                message = {"id": tenant, "room_id": "1", "text": tenant}
                await manager.publish(
                    "room:1", message, event_type="messagePosted", tenant_id=tenant
                )
            await manager.publish(
                "room:1", {"id": "all", "room_id": "1", "text": ""}, event_type="messagePosted"
            )
            assert [
                next_data(await alice.event())["data"]["messagePosted"]["id"] for _ in "ab"
            ] == [
                "acme",
                "all",
            ]
            got = [next_data(await bob.event()) for _ in "ab"]
            assert [g["payload"]["data"]["messagePosted"]["id"] for g in got] == ["globex", "all"]
            assert metric(manager, "events_filtered_tenant") == 4


# --- single connection mode -------------------------------------------------------------------


async def reserve(http: httpx.AsyncClient, user: str | None = "alice") -> str:
    response = await http.put("/graphql", headers=bearer(user) if user else {})
    assert response.status_code == 201
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    return response.text


def op(query: str, op_id: str, **extra: Any) -> dict[str, Any]:
    return {"query": query, "extensions": {"operationId": op_id}, **extra}


async def test_single_connection_mode_end_to_end() -> None:
    async with server() as (http, manager):
        token = await reserve(http)
        auth = {**bearer("alice"), TOKEN_HEADER: token}
        async with stream(http, "GET", headers=auth) as (r, events):
            assert r.status_code == 200
            for op_id in ("a", "b"):
                posted = await http.post("/graphql", json=op(COUNTER, op_id), headers=auth)
                assert (posted.status_code, posted.content) == (202, b"")
            await until(lambda: metric(manager, "active_subscriptions") == 2)
            await publish_counter(manager, range(20))
            got: dict[str, list[int]] = {"a": [], "b": []}
            for _ in range(40):
                data = next_data(await events.event())
                got[data["id"]].append(data["payload"]["data"]["counter"])
            assert got == {"a": list(range(20)), "b": list(range(20))}
            # A query: its result, then its complete, on the stream.
            posted = await http.post("/graphql", json=op("{ __typename }", "q"), headers=auth)
            assert posted.status_code == 202
            assert next_data(await events.event()) == {
                "id": "q",
                "payload": {"data": {"__typename": "Query"}},
            }
            assert await events.event() == {"event": "complete", "data": {"id": "q"}}
            # DELETE stops one operation; the other goes on.
            deleted = await http.delete("/graphql", params={"operationId": "a"}, headers=auth)
            assert deleted.status_code == 200
            assert metric(manager, "active_subscriptions") == 1
            await publish_counter(manager, [99])
            assert next_data(await events.event()) == {
                "id": "b",
                "payload": {"data": {"counter": 99}},
            }
            # The id is free again once its operation is stopped.
            posted = await http.post("/graphql", json=op(COUNTER, "a"), headers=auth)
            assert posted.status_code == 202
        await released(manager)


async def test_token_in_the_query_string() -> None:
    async with server() as (http, manager):
        token = await reserve(http, None)
        async with stream(http, "GET", params={"token": token}) as (r, events):
            assert r.status_code == 200
            posted = await http.post(
                "/graphql", params={"token": token}, json=op("{ __typename }", "1")
            )
            assert posted.status_code == 202
            assert next_data(await events.event())["id"] == "1"
            assert await events.event() == {"event": "complete", "data": {"id": "1"}}
            # An operation over GET, with the token in the query string too.
            query = {"token": token, "query": "{ __typename }", "extensions": '{"operationId":"2"}'}
            assert (await http.get("/graphql", params=query)).status_code == 202
            assert next_data(await events.event())["id"] == "2"
        await released(manager)


async def test_operations_posted_before_the_stream_opens_are_delivered() -> None:
    async with server() as (http, manager):
        token = await reserve(http)
        auth = {**bearer("alice"), TOKEN_HEADER: token}
        assert (
            await http.post("/graphql", json=op("{ __typename }", "q"), headers=auth)
        ).status_code == 202
        assert (await http.post("/graphql", json=op(COUNTER, "s"), headers=auth)).status_code == 202
        await publish_counter(manager, [5])
        async with stream(http, "GET", headers=auth) as (_, events):
            records = [await events.event() for _ in range(3)]
            assert {(r["event"], r["data"]["id"]) for r in records} == {
                ("next", "q"),
                ("complete", "q"),
                ("next", "s"),
            }
        await released(manager)


async def test_token_misuse() -> None:
    async with server() as (http, manager):
        unknown = {**bearer("alice"), TOKEN_HEADER: "nope"}
        assert (await http.get("/graphql", headers={**EVENT_STREAM, **unknown})).status_code == 404
        assert (
            await http.post("/graphql", json=op(COUNTER, "1"), headers=unknown)
        ).status_code == 404
        assert (await http.delete("/graphql?operationId=1", headers=unknown)).status_code == 404
        assert (await http.delete("/graphql?operationId=1")).status_code == 404

        token = await reserve(http)
        mine = {**bearer("alice"), TOKEN_HEADER: token}
        # Anyone but alice (of acme), with alice's token: refused, whatever the request.
        for other in (bearer("bob"), bearer("carol"), {}):
            theirs = {**other, TOKEN_HEADER: token}
            opened = await http.get("/graphql", headers={**EVENT_STREAM, **theirs})
            assert opened.status_code == 403
            posted = await http.post("/graphql", json=op(COUNTER, "1"), headers=theirs)
            assert posted.status_code == 403
            assert (await http.delete("/graphql?operationId=1", headers=theirs)).status_code == 403
        # A refused authentication with a valid token: 403 as well.
        refused = {**bearer("denied"), TOKEN_HEADER: token}
        assert (
            await http.post("/graphql", json=op(COUNTER, "1"), headers=refused)
        ).status_code == 403
        # PUT naming a stream that exists.
        assert (await http.put("/graphql", headers=mine)).status_code == 409
        async with stream(http, "GET", headers=mine) as (r, _):
            assert r.status_code == 200
            # Only one open stream per token.
            again = await http.get("/graphql", headers={**EVENT_STREAM, **mine})
            assert again.status_code == 409
            assert again.json() == {"errors": [{"message": "Stream already open"}]}
            assert metric(manager, "active_subscriptions") == 0
        await released(manager)
        # The stream is gone with its client: the token is no more.
        posted = await http.post("/graphql", json=op(COUNTER, "1"), headers=mine)
        assert posted.status_code == 404


async def test_each_operation_runs_as_its_own_request() -> None:
    async with server() as (http, manager):
        token = await reserve(http, "alice")
        async with stream(http, "GET", headers={**bearer("alice"), TOKEN_HEADER: token}) as (
            _,
            events,
        ):
            plain = {**bearer("alice"), TOKEN_HEADER: token}
            admin = {**bearer("alice-admin"), TOKEN_HEADER: token}
            query = "subscription { secret }"
            assert (
                await http.post("/graphql", json=op(query, "1"), headers=plain)
            ).status_code == 202
            errors = next_data(await events.event())["payload"]["errors"]
            assert errors[0]["extensions"] == {"code": "FORBIDDEN"}
            assert await events.event() == {"event": "complete", "data": {"id": "1"}}
            assert (
                await http.post("/graphql", json=op(query, "2"), headers=admin)
            ).status_code == 202
            await until(lambda: metric(manager, "active_subscriptions") == 1)
            await manager.publish("secret", {"n": 1})
            assert next_data(await events.event())["payload"] == {"data": {"secret": 1}}


async def test_single_connection_mode_bad_requests() -> None:
    async with server() as (http, manager):
        token = await reserve(http)
        auth = {**bearer("alice"), TOKEN_HEADER: token}
        async with stream(http, "GET", headers=auth):
            cases: list[tuple[str, dict[str, Any], int]] = [
                ("POST", {"json": {"query": COUNTER}}, 400),  # no operation id
                ("POST", {"json": op(COUNTER, "")}, 400),
                ("POST", {"json": op("subscription { nope }", "1")}, 400),
                ("POST", {"json": op(COUNTER, "1"), "headers": {"accept": "text/html"}}, 406),
                (
                    "GET",
                    {"params": {"query": "mutation { x }", "extensions": '{"operationId":"1"}'}},
                    405,
                ),
                ("DELETE", {}, 400),  # no operation id
            ]
            for method, kwargs, status in cases:
                headers = {**auth, **kwargs.pop("headers", {})}
                response = await http.request(method, "/graphql", headers=headers, **kwargs)
                assert response.status_code == status, (method, kwargs, response.text)
            invalid = await http.post(
                "/graphql", json=op("subscription { nope }", "1"), headers=auth
            )
            assert invalid.json()["errors"][0]["message"].startswith("Cannot query field")
            # An operation id in use.
            assert (
                await http.post("/graphql", json=op(COUNTER, "1"), headers=auth)
            ).status_code == 202
            assert (
                await http.post("/graphql", json=op(COUNTER, "1"), headers=auth)
            ).status_code == 409
            # PUT must be able to answer text/plain.
            put = await http.put("/graphql", headers={"accept": "application/json"})
            assert put.status_code == 406
        await released(manager)


async def test_reservation_not_opened_in_time_is_dropped() -> None:
    async with server(connection_init_timeout=0.2) as (http, manager):
        token = await reserve(http)
        auth = {**bearer("alice"), TOKEN_HEADER: token}
        assert (await http.post("/graphql", json=op(COUNTER, "1"), headers=auth)).status_code == 202
        assert metric(manager, "active_subscriptions") == 1
        await released(manager)
        assert manager.connections_closed[4408] == 1
        assert (await http.get("/graphql", headers={**EVENT_STREAM, **auth})).status_code == 404


# --- limits, keep-alive, disconnects, shutdown ------------------------------------------------


async def test_max_subscriptions_per_stream() -> None:
    async with server(max_subscriptions=2) as (http, manager):
        token = await reserve(http)
        auth = {**bearer("alice"), TOKEN_HEADER: token}
        async with stream(http, "GET", headers=auth) as (_, events):
            for op_id in ("1", "2", "3"):
                posted = await http.post("/graphql", json=op(COUNTER, op_id), headers=auth)
                assert posted.status_code == 202
            data = next_data(await events.event())
            assert data["id"] == "3"
            assert data["payload"]["errors"][0]["extensions"] == {"code": "TOO_MANY_SUBSCRIPTIONS"}
            assert await events.event() == {"event": "complete", "data": {"id": "3"}}
            assert metric(manager, "active_subscriptions") == 2


async def test_bodies_over_max_message_size_get_413() -> None:
    async with server(max_message_size=100) as (http, manager):
        body = {"query": COUNTER, "variables": {"padding": "x" * 200}}
        response = await http.post("/graphql", json=body, headers=EVENT_STREAM)
        assert response.status_code == 413
        token = await reserve(http)
        response = await http.post(
            "/graphql",
            json={**body, "extensions": {"operationId": "1"}},
            headers={**bearer("alice"), TOKEN_HEADER: token},
        )
        assert response.status_code == 413
        assert metric(manager, "subscriptions_registered") == 0


async def test_keepalive_comments_while_idle() -> None:
    async with (
        server(keepalive_interval=0.05) as (http, manager),
        stream(http, json={"query": COUNTER}) as (_, events),
    ):
        # The first comment opens the stream; more follow while nothing else is sent.
        comments = [await events.record(timeout=2) for _ in range(4)]
        assert comments == [{"comment": ""}] * 4
        await until(lambda: metric(manager, "active_subscriptions") == 1)
        await publish_counter(manager, [1])
        while "comment" in (record := await events.record()):
            pass
        assert next_data(record) == {"data": {"counter": 1}}


async def test_disconnect_releases_everything() -> None:
    async with server() as (http, manager):
        token = await reserve(http)
        auth = {**bearer("alice"), TOKEN_HEADER: token}
        async with stream(http, json={"query": COUNTER}), stream(http, "GET", headers=auth):
            for op_id in ("1", "2", "3"):
                assert (
                    await http.post("/graphql", json=op(COUNTER, op_id), headers=auth)
                ).status_code == 202
            await until(lambda: metric(manager, "active_subscriptions") == 4)
            await publish_counter(manager, range(3))
            assert metric(manager, "active_connections") == 2
        # Both clients closed their streams without reading: all is gone at once.
        await released(manager)
        assert manager.connections_closed[1000] == 2
        assert (await http.post("/graphql", json=op(COUNTER, "4"), headers=auth)).status_code == 404


async def test_lagging_distinct_stream_gets_the_error_then_ends() -> None:
    async with server(max_queue=2) as (http, manager):
        async with stream(http, json={"query": COUNTER}) as (_, events):
            await until(lambda: metric(manager, "active_subscriptions") == 1)
            for n in range(5):  # at once, without letting the stream's sender run
                manager.executor.publish_event("event", "counter", {"n": n})
            records = []
            with contextlib.suppress(StopAsyncIteration):
                while True:
                    records.append(await events.event())
            assert records[-2]["event"] == "next"
            assert records[-2]["data"]["errors"][0]["extensions"]["code"] == "EVENTS_LAGGED"
            assert records[-1] == {"event": "complete", "data": ""}
        await released(manager)


async def test_shutdown_completes_every_stream() -> None:
    async with server() as (http, manager):
        token = await reserve(http)
        unopened = await reserve(http, "bob")
        auth = {**bearer("alice"), TOKEN_HEADER: token}
        async with (
            stream(http, json={"query": COUNTER}) as (_, distinct),
            stream(http, "GET", headers=auth) as (_, single),
        ):
            for op_id in ("1", "2"):
                assert (
                    await http.post("/graphql", json=op(COUNTER, op_id), headers=auth)
                ).status_code == 202
            await until(lambda: metric(manager, "active_subscriptions") == 3)
            await manager.stop()
            assert await distinct.event() == {"event": "complete", "data": ""}
            assert await distinct.ended()
            completes = [await single.event(), await single.event()]
            assert sorted(c["data"]["id"] for c in completes) == ["1", "2"]
            assert all(c["event"] == "complete" for c in completes)
            assert await single.ended()
        await released(manager)
        assert manager.connections_closed[1001] == 3
        bob = {**bearer("bob"), TOKEN_HEADER: unopened}
        assert (await http.get("/graphql", headers={**EVENT_STREAM, **bob})).status_code == 404


async def test_sse_off() -> None:
    async with server(sse=False) as (http, manager):
        assert (await http.put("/graphql")).status_code == 405
        assert (await http.delete("/graphql?operationId=1")).status_code == 405
        response = await http.post("/graphql", json={"query": COUNTER}, headers=EVENT_STREAM)
        assert response.status_code == 406
        response = await http.get("/graphql", params={"query": COUNTER}, headers=EVENT_STREAM)
        assert response.status_code == 406
        # A token means nothing then: the plain GraphQL over HTTP path answers.
        response = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={TOKEN_HEADER: "x"}
        )
        assert response.json() == {"data": {"__typename": "Query"}}
        assert not manager.connections


SIGTERM_APP = '''
from fastapi import FastAPI

from fraiseql_fastapi import SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

registry = SubscriptionRegistry()


@subscription(registry=registry, channel="counter")
def counter(event) -> int:
    """A number per event."""
    return int(event.data["n"])


manager = SubscriptionManager(subscriptions=registry.fields)
app = FastAPI(lifespan=manager.lifespan)
app.include_router(SubscriptionRouterFactory.create(manager))
'''


async def test_sigterm_completes_streams_then_the_server_exits(tmp_path: Path) -> None:
    (tmp_path / "sse_app.py").write_text(SIGTERM_APP)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "sse_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(200):
                try:
                    await http.post("/graphql", json={"query": "{ __typename }"})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            token = (await http.put("/graphql")).text
            async with (
                stream(http, json={"query": COUNTER}) as (_, distinct),
                stream(http, "GET", headers={TOKEN_HEADER: token}) as (_, single),
            ):
                posted = await http.post(
                    "/graphql", json=op(COUNTER, "1"), headers={TOKEN_HEADER: token}
                )
                assert posted.status_code == 202
                await asyncio.sleep(0.3)
                process.send_signal(signal.SIGTERM)
                assert await distinct.event() == {"event": "complete", "data": ""}
                assert await single.event() == {"event": "complete", "data": {"id": "1"}}
                assert await distinct.ended() and await single.ended()
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)
    finally:
        process.kill()
        process.wait()


# --- the real graphql-sse client --------------------------------------------------------------


@contextlib.asynccontextmanager
async def sse_client(
    http: httpx.AsyncClient, mode: str, scenario: str, user: str | None = None
) -> AsyncIterator[NodeClient]:
    """tests/js/sse_client.mjs in `mode` playing `scenario` (as `user`)."""
    url = str(http.base_url.join("/graphql"))
    async with node_client("sse_client.mjs", url, mode, scenario, *([user] if user else [])) as n:
        yield n


MODES = pytest.mark.parametrize("mode", ["distinct", "single"])


@js_clients
@MODES
async def test_client_receives_100_of_100_events_in_order(mode: str) -> None:
    async with server() as (http, manager), sse_client(http, mode, "events") as node:
        await until(lambda: metric(manager, "active_subscriptions") == 1, timeout=20)
        await publish_counter(manager, range(100))
        assert await node.event() == {"values": list(range(100))}
        assert await node.finish() == 0
        await released(manager)


@js_clients
@MODES
async def test_client_error_path_for_a_refused_request(mode: str) -> None:
    async with server() as (http, manager), sse_client(http, mode, "refused", "denied") as node:
        assert await node.event() == {"error": "Server responded with 403: Forbidden"}
        assert await node.finish() == 0
        await released(manager)


@js_clients
@MODES
async def test_client_gets_validation_errors(mode: str) -> None:
    async with server() as (http, manager), sse_client(http, mode, "invalid") as node:
        outcome = await node.event()
        if mode == "distinct":
            # On the accepted stream: a result with the errors, then complete.
            assert outcome["completed"] is True
            [result] = outcome["results"]
            assert result["errors"][0]["message"].startswith("Cannot query field 'nope'")
        else:
            # A 400 to the POST, which the client reports on the error path.
            assert outcome == {"error": "Server responded with 400: Bad Request"}
        assert await node.finish() == 0
        await released(manager)


@js_clients
@MODES
async def test_client_unsubscribe_drops_the_subscription(mode: str) -> None:
    async with server() as (http, manager), sse_client(http, mode, "unsubscribe") as node:
        await until(lambda: metric(manager, "active_subscriptions") == 1, timeout=20)
        await publish_counter(manager, [7])
        assert await node.event() == {"unsubscribed": True, "values": [7]}
        await until(lambda: metric(manager, "active_subscriptions") == 0)
        if mode == "single":
            # Stopped by its DELETE: the client's stream stays open.
            await asyncio.sleep(0.1)
            assert metric(manager, "active_connections") == 1
        assert await node.finish() == 0
        await released(manager)


@js_clients
@MODES
async def test_client_dispose_releases_everything(mode: str) -> None:
    async with server() as (http, manager), sse_client(http, mode, "dispose") as node:
        await until(lambda: metric(manager, "active_subscriptions") == 2, timeout=20)
        await publish_counter(manager, [1])
        assert await node.event() == {"disposed": True}
        await released(manager)
        assert await node.finish() == 0


def is_mutation(query: str) -> bool:
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError:
        return False
    return any(
        getattr(d, "operation", None) == graphql.OperationType.MUTATION
        for d in document.definitions
    )


# --- the protocol's decisions -----------------------------------------------------------------

OPTIONS = ProtocolOptions(max_message_size=256)
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]) | st.text(
    max_size=8
)
HEADER_VALUES = {
    "accept": st.sampled_from(
        [
            "text/event-stream",
            "*/*",
            "application/json",
            "text/plain",
            "text/html",
            "text/event-stream;q=0",
            "application/json, text/event-stream",
            "",
        ]
    )
    | st.text(max_size=30),
    "content-type": st.sampled_from(["application/json", "text/plain", ""]) | st.text(max_size=20),
    TOKEN_HEADER: st.sampled_from(["", "t"]) | st.text(max_size=10),
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
graphql_bodies = st.fixed_dictionaries(
    {},
    optional={
        "query": st.sampled_from([COUNTER, "{ __typename }", "mutation { x }", "{"]) | json_values,
        "variables": json_values,
        "operationName": json_values,
        "extensions": st.fixed_dictionaries({}, optional={"operationId": json_values})
        | json_values,
    },
)
bodies = (
    graphql_bodies.map(lambda b: json.dumps(b).encode())
    | st.binary(max_size=300)
    | st.just(b"x" * 300)
)
queries = st.dictionaries(
    st.sampled_from(["query", "variables", "extensions", "operationName", "token", "operationId"]),
    st.sampled_from([COUNTER, "mutation { x }", "{}", '{"operationId": "1"}', "", "t"])
    | st.text(max_size=10),
    max_size=6,
)


@settings(max_examples=500, deadline=None)
@given(
    method=METHODS,
    headers=st.fixed_dictionaries({}, optional=HEADER_VALUES),
    query=queries,
    body=bodies,
    sse=st.booleans(),
)
def test_decide_never_fails_and_answers_allowed_codes(
    method: str, headers: dict[str, str], query: dict[str, str], body: bytes, sse: bool
) -> None:
    options = ProtocolOptions(max_message_size=256, sse=sse)
    request = SSERequest(method, headers, query, body)
    decision = decide(request, options)
    if not wants_sse(method, headers, query, options):
        assert decision is None
        return
    assert decision is not None
    if isinstance(decision, Reply):
        assert decision.status in {400, 404, 405, 406, 413, 415}
        assert (decision.allow is not None) == (decision.status == 405)
        if decision.body:
            assert json.loads(decision.body)["errors"][0]["message"]
        return
    assert sse, "nothing but a refusal while SSE is off"
    if isinstance(decision, Reserve):
        assert method == "PUT"
    elif isinstance(decision, Stop):
        assert method == "DELETE" and decision.token and decision.operation_id
    elif isinstance(decision, Listen):
        assert method in ("GET", "POST") and decision.token
    elif isinstance(decision, Execute):
        assert method in ("GET", "POST") and decision.token and decision.operation_id
        assert method == "POST" or not is_mutation(decision.params.query)
    else:
        assert isinstance(decision, Distinct)
        assert method in ("GET", "POST") and isinstance(decision.params.query, str)
        assert method == "POST" or not is_mutation(decision.params.query)
    if method == "POST" and not isinstance(decision, Listen | Reserve | Stop):
        assert len(body) <= OPTIONS.max_message_size
