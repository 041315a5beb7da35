"""Resolver errors as GraphQL defines them, over real WebSockets: a failed call for one event is
a field error in that event's `next` (masked unless raised on purpose or unmasked), logged once
per call with its traceback and counted; the subscription goes on. Only a stream failure
(EVENTS_LAGGED) ends it with `error`."""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    graphql,
)
from helpers import flood, running_server, until_ended, ws_client
from test_protocol import until

from fraiseql_fastapi import SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.error_formatting import ErrorFormatter
from fraiseql_fastapi.http_abstraction import ProtocolOptions
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()
SECRET = "db password=hunter2 at 10.0.0.5 failed"


@dataclass
class Message:
    id: str
    text: str


def outcome(data: Mapping[str, Any]) -> Message | None:
    if data.get("fail") == "secret":
        raise RuntimeError(SECRET)
    if data.get("fail") == "graphql":
        raise GraphQLError("Room is closed", extensions={"code": "ROOM_CLOSED", "room": "1"})
    return Message(id=data["id"], text=data["text"])


@subscription(channel="room", registry=registry)
async def message_posted(event: Any) -> Message | None:
    """Shared by every subscriber (no context): one call per event."""
    return outcome(event.data)


@subscription(channel="room", registry=registry)
def required_message(event: Any) -> Message:
    """A non-null field: its error nulls `data` itself."""
    result = outcome(event.data)
    assert result is not None
    return result


QUERY = "subscription { messagePosted { id text } }"


@contextlib.asynccontextmanager
async def server(**manager_options: Any) -> AsyncIterator[tuple[str, SubscriptionManager]]:
    manager = SubscriptionManager(subscriptions=registry.fields, **manager_options)
    app = FastAPI(lifespan=manager.lifespan)
    app.include_router(
        SubscriptionRouterFactory.create(manager, options=ProtocolOptions(ping_interval=None))
    )
    async with running_server(app) as address:
        yield address, manager


def masked(key: str, data: Any) -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": "Internal server error",
                "path": [key],
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            }
        ],
        "data": data,
    }


async def test_an_exception_is_masked_logged_once_and_the_stream_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fraiseql_fastapi")
    async with server() as (address, manager), ws_client(address) as a, ws_client(address) as b:
        for client in (a, b):
            await client.init()
            await client.subscribe("1", QUERY)
        await client.subscribe("2", "subscription { alias: messagePosted { id } }")
        await until(lambda: manager.get_metrics()["subscribers"] == 3)
        await manager.publish("room", {"fail": "secret"})
        assert await a.receive() == {
            "id": "1",
            "type": "next",
            "payload": masked("messagePosted", {"messagePosted": None}),
        }
        received = [await b.receive(), await b.receive()]
        assert sorted(received, key=lambda m: str(m["id"])) == [
            {
                "id": "1",
                "type": "next",
                "payload": masked("messagePosted", {"messagePosted": None}),
            },
            {"id": "2", "type": "next", "payload": masked("alias", {"alias": None})},
        ]
        # The same subscriptions get the next event.
        await manager.publish("room", {"id": "7", "text": "hi"})
        assert await a.receive() == {
            "id": "1",
            "type": "next",
            "payload": {"data": {"messagePosted": {"id": "7", "text": "hi"}}},
        }
        assert manager.get_metrics()["resolver_errors"] == 1
    records = [r for r in caplog.records if r.name == "fraiseql_fastapi"]
    assert len(records) == 1, "one log record per resolver call, not per subscriber"
    (record,) = records
    assert record.levelno == logging.ERROR and "messagePosted" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == SECRET
    assert "test_resolver_errors.py" in caplog.text, "with its traceback"


@pytest.mark.parametrize("field", ["messagePosted", "requiredMessage"])
async def test_the_log_has_the_traceback_of_a_sync_or_async_resolver(
    field: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`messagePosted` is an `async def`, `requiredMessage` a `def`: the core calls the second
    itself, and its exception reaches the log with the frames it was raised through."""
    caplog.set_level(logging.ERROR, logger="fraiseql_fastapi")
    async with server() as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", f"subscription {{ {field} {{ id }} }}")
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room", {"fail": "secret"})
        await c.receive()
    (record,) = [r for r in caplog.records if r.name == "fraiseql_fastapi"]
    assert record.exc_info is not None
    frames = [frame.f_code.co_name for frame, _ in traceback.walk_tb(record.exc_info[2])]
    assert "outcome" in frames, frames


async def test_a_graphql_error_goes_out_as_raised_and_unmasking_is_for_development() -> None:
    async with server(mask_errors=False) as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", QUERY)
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room", {"fail": "graphql"})
        assert (await c.receive())["payload"]["errors"] == [
            {
                "message": "Room is closed",
                "path": ["messagePosted"],
                "extensions": {"code": "ROOM_CLOSED", "room": "1"},
            }
        ]
        await manager.publish("room", {"fail": "secret"})
        assert (await c.receive())["payload"]["errors"] == [
            {
                "message": SECRET,
                "path": ["messagePosted"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            }
        ]
    async with server() as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", QUERY)
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room", {"fail": "graphql"})
        assert (await c.receive())["payload"]["errors"][0]["message"] == "Room is closed"


async def test_a_non_null_field_nulls_data() -> None:
    async with server() as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("1", "subscription { requiredMessage { id } }")
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room", {"fail": "secret"})
        assert (await c.receive())["payload"] == masked("requiredMessage", None)


async def test_format_error_rewrites_every_error() -> None:
    seen: list[GraphQLError] = []

    def format_error(error: GraphQLError) -> dict[str, Any]:
        seen.append(error)
        return {"message": f"sorry: {error.message}", "extensions": {"code": "SORRY"}}

    async with server(format_error=format_error) as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("bad", "subscription { nope }")
        error = await c.receive()
        assert error["type"] == "error"
        assert error["payload"][0]["message"].startswith("sorry: Cannot query field 'nope'")
        await c.subscribe("1", QUERY)
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room", {"fail": "secret"})
        assert (await c.receive())["payload"]["errors"] == [
            {
                "message": "sorry: Internal server error",
                "path": ["messagePosted"],
                "extensions": {"code": "SORRY"},
            }
        ]
    # The hook sees the masked error, with the exception behind it.
    assert isinstance(seen[-1].original_error, RuntimeError)
    assert str(seen[-1].original_error) == SECRET


async def test_lagging_still_ends_the_subscription_with_error() -> None:
    async with server(max_queue=3) as (address, manager), ws_client(address) as c:
        await c.init()
        # The text is selected: the frames must fill the socket's buffers (see `flood`).
        await c.subscribe("1", "subscription { requiredMessage { id text } }")
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        flood(manager, "room", lambda i, text: {"id": str(i), "text": text})
        *nexts, error = await until_ended(c)
        assert len(nexts) >= 3 and error["type"] == "error"  # the queue of three overflowed
        assert error["payload"][0]["extensions"]["code"] == "EVENTS_LAGGED"
        await until(lambda: manager.get_metrics()["subscribers"] == 0)


async def test_query_errors_are_masked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def fail(*_: Any) -> str:
        raise RuntimeError(SECRET)

    def closed(*_: Any) -> str:
        raise GraphQLError("Closed", extensions={"code": "CLOSED"})

    query = GraphQLObjectType(
        "Query",
        {
            "fail": GraphQLField(GraphQLString, resolve=fail),
            "closed": GraphQLField(GraphQLString, resolve=closed),
        },
    )
    result = await graphql(GraphQLSchema(query), "{ fail closed }")
    assert result.errors
    formatter = ErrorFormatter()
    with caplog.at_level(logging.ERROR, logger="fraiseql_fastapi"):
        formatter.log_unexpected(result.errors)
    formatted = sorted(formatter.format_all(result.errors), key=lambda e: str(e["path"]))
    assert formatted == [
        {
            "message": "Closed",
            "locations": [{"line": 1, "column": 8}],
            "path": ["closed"],
            "extensions": {"code": "CLOSED"},
        },
        {
            "message": "Internal server error",
            "locations": [{"line": 1, "column": 3}],
            "path": ["fail"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        },
    ]
    assert len(caplog.records) == 1 and str(caplog.records[0].exc_info[1]) == SECRET  # type: ignore[index]


async def test_a_failing_format_error_masks_and_keeps_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def format_error(error: GraphQLError) -> dict[str, Any]:
        raise ValueError(f"hook broke on {error.message}")

    async with server(format_error=format_error) as (address, manager), ws_client(address) as c:
        await c.init()
        await c.subscribe("bad", "subscription { nope }")
        assert (await c.receive())["payload"] == [
            {"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        ]
        await c.subscribe("1", QUERY)
        await until(lambda: manager.get_metrics()["subscribers"] == 1)
        await manager.publish("room", {"fail": "secret"})
        assert (await c.receive())["payload"] == masked("messagePosted", {"messagePosted": None})
    assert "format_error failed" in caplog.text
