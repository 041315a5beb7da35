"""The how-to guides on declaring subscriptions run as written: the files under
docs/examples/channels/, docs/examples/scopes/ and docs/examples/errors/ serve what
docs/guides/channels-and-filters.md, resolver-scopes.md and errors.md say, over real sockets
(a uvicorn server on 127.0.0.1 and a graphql-transport-ws client)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from example_modules import fresh_module
from fastapi import FastAPI
from helpers import ROOT, Client, blocks, flood, running_server, until, until_ended, ws_client

from fraiseql_fastapi import SubscriptionDefinitionError, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory

pytestmark = pytest.mark.anyio

DOCS = ROOT / "docs"
GUIDES = DOCS / "guides"


def json_blocks(page: Path) -> list[Any]:
    return [json.loads(block) for block in blocks(page, "json")]


async def silent(client: Client, timeout: float = 0.3) -> None:
    """Nothing more arrives for `client`."""
    with pytest.raises(asyncio.TimeoutError):
        message = await client.receive(timeout=timeout)
        print("unexpected:", message)


@contextlib.asynccontextmanager
async def clients(address: str, *tokens: str | None) -> AsyncIterator[list[Client]]:
    """One acknowledged connection per token (None: no payload)."""
    async with contextlib.AsyncExitStack() as stack:
        result = []
        for token in tokens:
            client = await stack.enter_async_context(ws_client(address))
            ack = await client.init(None if token is None else {"token": token})
            assert ack["type"] == "connection_ack", ack
            result.append(client)
        yield result


async def subscribed(manager: Any, count: int) -> None:
    await until(lambda: manager.get_metrics()["subscribers"] == count)


def data(message: dict[str, Any]) -> Any:
    assert message["type"] == "next", message
    return message["payload"]["data"]


# ----- Channels and filters ------------------------------------------------------------------

CHANNELS = GUIDES / "channels-and-filters.md"


def without_descriptions(sdl: str) -> str:
    sdl = re.sub(r'\s*"""(.*?)"""', "", sdl, flags=re.DOTALL)
    return re.sub(r"\n\n(?=  )", "\n", sdl)  # and no blank line inside a type


def test_the_schemas_on_the_channels_page_are_the_examples() -> None:
    app_sdl, types_sdl = blocks(CHANNELS, "graphql")
    app = fresh_module("docs/examples/channels/app.py")
    assert app_sdl.strip() in without_descriptions(app.manager.print_schema())
    types = fresh_module("docs/examples/channels/types.py")
    printed = without_descriptions(types.manager.print_schema())
    subscription_type, trade_type = types_sdl.strip().split("\n}\n")
    assert subscription_type + "\n}" in printed and trade_type in printed


def test_a_misdeclared_resolver_fails_at_import_time_as_the_page_says() -> None:
    registry = SubscriptionRegistry()
    with pytest.raises(SubscriptionDefinitionError) as raised:

        @subscription(channel="room:{room}", registry=registry)
        def message_posted(event: Any, room_id: str) -> str:
            return ""

    assert str(raised.value) in CHANNELS.read_text()


def message(n: int, author: str, room: str = "lobby", **extra: Any) -> dict[str, Any]:
    return {"id": str(n), "room_id": room, "author": author, "text": f"m{n}", **extra}


async def test_a_templated_channel_its_filter_event_types_and_none() -> None:
    app = fresh_module("docs/examples/channels/app.py")
    query = 'subscription ($by: String) { messagePosted(roomId: "lobby", author: $by) { id } }'
    async with (
        running_server(app.app) as address,
        clients(address, "ann", "bob", "carol") as (
            ann,
            bob,
            carol,
        ),
    ):
        await ann.subscribe("1", query)  # every author
        await bob.subscribe("1", query, {"by": "ann"})  # ann's messages only
        await carol.subscribe("1", query)  # of another tenant
        await subscribed(app.manager, 3)
        post = app.post_message
        # bob's filter drops bob's message, and carol is of globex.
        assert await post(app.Message(**message(1, "bob")), tenant_id="acme") == 1
        assert await post(app.Message(**message(2, "ann")), tenant_id="acme") == 2
        # The resolver returns None for a hidden message: nothing is sent.
        assert await post(app.Message(**message(3, "ann", hidden=True)), tenant_id="acme") == 0
        # Not an accepted event type; the default event type ("event") is not either.
        edited = message(4, "ann")
        assert await app.manager.publish("room:lobby", edited, event_type="messageEdited") == 0
        assert await app.manager.publish("room:lobby", edited) == 0
        # Another room is another channel.
        other = app.Message(**message(5, "ann", room="games"))
        assert await post(other, tenant_id="acme") == 0
        # Without a tenant an event reaches every tenant; with a user, that user alone.
        everyone = message(6, "ann")
        assert await app.manager.publish("room:lobby", everyone, event_type="messagePosted") == 3
        direct = message(7, "ann")
        delivered = await app.manager.publish(
            "room:lobby", direct, event_type="messagePosted", user_id="bob"
        )
        assert delivered == 1
        assert [data(await ann.receive())["messagePosted"]["id"] for _ in range(3)] == [
            "1",
            "2",
            "6",
        ]
        assert [data(await bob.receive())["messagePosted"]["id"] for _ in range(3)] == [
            "2",
            "6",
            "7",
        ]
        assert data(await carol.receive()) == {"messagePosted": {"id": "6"}}
        for client in (ann, bob, carol):
            await silent(client)
        metrics = app.manager.get_metrics()
        assert metrics["events_filtered_args"] >= 1
        # The hidden message: one call per argument set (ann's, bob's), both returned None.
        assert metrics["resolver_skips"] == 2


async def test_a_channel_function_several_channels_and_declared_filters() -> None:
    app = fresh_module("docs/examples/channels/app.py")
    query = (
        "subscription ($rooms: [String!]!, $tag: String) "
        "{ roomActivity(rooms: $rooms, tag: $tag) { id } }"
    )
    publish = app.manager.publish
    async with running_server(app.app) as address, clients(address, "ann", "bob") as (ann, bob):
        await ann.subscribe("1", query, {"rooms": ["lobby", "games"]})
        await bob.subscribe("1", query, {"rooms": ["games"], "tag": "chess"})
        await subscribed(app.manager, 2)
        assert await publish("room:lobby", message(1, "x"), event_type="messagePosted") == 1
        chess = message(2, "x", room="games", tags=["chess", "go"])
        assert await publish("room:games", chess, event_type="messageEdited") == 2
        go = message(3, "x", room="games", tags=["go"])
        assert await publish("room:games", go, event_type="messagePosted") == 1
        # The constant filter: hidden messages never reach anyone.
        hidden = message(4, "x", room="games", tags=["chess"], hidden=True)
        assert await publish("room:games", hidden, event_type="messagePosted") == 0
        # Not an accepted event type.
        assert await publish("room:games", chess, event_type="messageDeleted") == 0
        assert [data(await ann.receive())["roomActivity"]["id"] for _ in range(3)] == [
            "1",
            "2",
            "3",
        ]
        assert data(await bob.receive()) == {"roomActivity": {"id": "2"}}
        await silent(ann)
        await silent(bob)


async def test_complete_ends_a_group_and_complete_channel_ends_the_rest() -> None:
    app = fresh_module("docs/examples/channels/app.py")
    query = (
        "subscription ($min: Float) { bidPlaced(auctionId: 7, minAmount: $min) { bidder amount } }"
    )

    def bid(bidder: str, amount: float, final: bool = False) -> dict[str, Any]:
        return {"auction_id": 7, "bidder": bidder, "amount": amount, "final": final}

    publish = app.manager.publish
    async with running_server(app.app) as address, clients(address, "ann", "bob") as (ann, bob):
        await ann.subscribe("1", query)
        await bob.subscribe("1", query, {"min": 100})
        await subscribed(app.manager, 2)
        assert await publish("auction:7", bid("x", 120)) == 2
        assert await publish("auction:7", bid("y", 50)) == 1  # under bob's minAmount
        assert await publish("auction:8", bid("z", 500)) == 0  # another auction
        assert await publish("auction:7", bid("y", 80, final=True)) == 1
        assert [data(await ann.receive())["bidPlaced"]["amount"] for _ in range(3)] == [
            120,
            50,
            80,
        ]
        assert await ann.receive() == {"id": "1", "type": "complete"}
        assert data(await bob.receive()) == {"bidPlaced": {"bidder": "x", "amount": 120}}
        await silent(bob)  # the final bid did not pass bob's filter: still subscribed
        await subscribed(app.manager, 1)
        assert await app.close_auction(7) == 1
        assert await bob.receive() == {"id": "1", "type": "complete"}
        await subscribed(app.manager, 0)


async def test_a_pydantic_result_is_serialized_by_pydantic_as_the_page_shows() -> None:
    types = fresh_module("docs/examples/channels/types.py")
    app = FastAPI(lifespan=types.manager.lifespan)
    app.include_router(SubscriptionRouterFactory.create(types.manager))
    trade = types.Trade(
        id=uuid.UUID(int=1),
        symbol="acme",
        side=types.Side.SELL,
        price=decimal.Decimal("10.50"),
        executed_at=datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc),
        venue={"mic": "XPAR"},
    )
    query = (
        "subscription ($sides: [Side!]) "
        '{ tradeExecuted(symbol: "acme", sides: $sides) { symbol side price time } }'
    )
    async with running_server(app) as address, clients(address, None, None) as (a, sellers):
        await a.subscribe("1", query)
        await sellers.subscribe("1", query, {"sides": ["SELL"]})
        await subscribed(types.manager, 2)
        assert await types.manager.publish("trades:acme", trade) == 2
        shown = re.search(r"gets\n?\s*`(\{.*?\})`", CHANNELS.read_text(), re.DOTALL)
        assert shown is not None
        for client in (a, sellers):
            assert data(await client.receive()) == {"tradeExecuted": json.loads(shown.group(1))}
        bought = trade.model_copy(update={"side": types.Side.BUY})
        assert await types.manager.publish("trades:acme", bought) == 1  # not to sellers
        assert data(await a.receive())["tradeExecuted"]["side"] == "BUY"
        await silent(sellers)


async def test_an_async_generator_streams_then_completes_and_its_finally_runs() -> None:
    app = fresh_module("docs/examples/channels/app.py")
    async with running_server(app.app) as address, clients(address, "ann") as (ann,):
        await ann.subscribe("1", "subscription { countdown(from: 3, interval: 0.01) }")
        assert [data(await ann.receive())["countdown"] for _ in range(4)] == [3, 2, 1, 0]
        assert await ann.receive() == {"id": "1", "type": "complete"}
        await until(lambda: app.running == 0)
        await ann.subscribe("2", "subscription { countdown(from: 1000, interval: 0.05) }")
        assert data(await ann.receive()) == {"countdown": 1000}
        assert app.running == 1
        await ann.send({"id": "2", "type": "complete"})
        await until(lambda: app.running == 0)


# ----- Resolver sharing scopes -------------------------------------------------------------

SCOPES = GUIDES / "resolver-scopes.md"
SCOPE_FIELDS = ("quote", "localQuote", "holding", "auditedQuote")


def calls_on_the_page() -> dict[str, int]:
    """The page's table: resolver calls per event, by field."""
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| (\d+) \|", SCOPES.read_text(), re.MULTILINE)
    assert [field for field, _ in rows] == list(SCOPE_FIELDS)
    return {field: int(calls) for field, calls in rows}


async def test_each_scope_costs_the_calls_per_event_the_page_states() -> None:
    app = fresh_module("docs/examples/scopes/app.py")
    # ann twice (two connections), bob (acme like ann), carol (globex).
    async with (
        running_server(app.app) as address,
        clients(address, "ann", "ann", "bob", "carol") as (
            ann,
            ann_again,
            bob,
            carol,
        ),
    ):
        for client in (ann, ann_again, bob, carol):
            for n, field in enumerate(SCOPE_FIELDS):
                # Selections differ (ann's second connection adds `symbol`): they still share.
                selection = "{ symbol price }" if client is ann_again else "{ price }"
                await client.subscribe(
                    str(n), f'subscription {{ {field}(symbol: "ACME") {selection} }}'
                )
        await subscribed(app.manager, 16)
        assert app.manager.get_metrics()["resolution_groups"] == 1 + 2 + 3 + 4
        for event, price in enumerate((10.0, 12.0), start=1):
            before = app.manager.get_metrics()["resolver_calls"]
            assert await app.manager.publish("quotes:ACME", {"price": price}) == 16
            expected = calls_on_the_page()
            assert {field: app.calls[field] for field in SCOPE_FIELDS} == {
                field: count * event for field, count in expected.items()
            }
            assert app.manager.get_metrics()["resolver_calls"] - before == 10
            values: dict[str, dict[str, float]] = {}
            for name, client in (("ann", ann), ("ann2", ann_again), ("bob", bob), ("carol", carol)):
                for _ in SCOPE_FIELDS:
                    ((field, value),) = data(await client.receive()).items()
                    values.setdefault(field, {})[name] = value["price"]
            # Each group's call had a context of its own tenant or user.
            assert values["quote"] == dict.fromkeys(("ann", "ann2", "bob", "carol"), price)
            assert values["localQuote"] == {
                "ann": price,
                "ann2": price,
                "bob": price,
                "carol": price / 2,
            }
            assert values["holding"] == {
                "ann": price * 10,
                "ann2": price * 10,
                "bob": price * 3,
                "carol": price * 7,
            }
        assert sorted(user for user, _ in app.audit) == sorted(["ann", "ann", "bob", "carol"] * 2)
        for client in (ann, ann_again, bob, carol):
            await silent(client, 0.1)


def sharing_app(scope: str) -> tuple[Any, Any, list[Any]]:
    """One field on "rates", taking `context`, with `scope`: its app, manager and the contexts
    of its calls."""
    from fraiseql_fastapi import SubscriptionManager

    contexts: list[Any] = []
    registry = SubscriptionRegistry()

    @subscription(channel="rates", scope=scope, registry=registry)  # type: ignore[arg-type]
    def rate(event: Any, currency: str, context: Any) -> float:
        contexts.append(context)
        return float(event.data[currency])

    app_module = fresh_module("docs/examples/scopes/app.py")
    manager = SubscriptionManager(subscriptions=registry.fields)
    app = FastAPI(lifespan=manager.lifespan)
    app.include_router(SubscriptionRouterFactory.create(manager, on_connect=app_module.on_connect))
    return app, manager, contexts


@pytest.mark.parametrize(
    ("scope", "tokens", "calls"),
    [
        # global, even with context: one call per argument set (USD, EUR).
        ("global", ("ann", "bob", "carol", "ann"), 2),
        # tenant: USD for acme (ann, bob), EUR for globex (carol) and EUR for acme (ann).
        ("tenant", ("ann", "bob", "carol", "ann"), 3),
        # user, the default: the two anonymous USD subscriptions share one call (anonymous
        # connections are one "user"); EUR for anonymous, EUR for ann.
        ("user", (None, None, None, "ann"), 3),
    ],
)
async def test_arguments_and_identities_split_the_groups(
    scope: str, tokens: tuple[str | None, ...], calls: int
) -> None:
    app, manager, contexts = sharing_app(scope)
    currencies = ("USD", "USD", "EUR", "EUR")
    async with running_server(app) as address, clients(address, *tokens) as connected:
        for client, currency in zip(connected, currencies, strict=True):
            await client.subscribe("1", f'subscription {{ rate(currency: "{currency}") }}')
        await subscribed(manager, 4)
        assert await manager.publish("rates", {"USD": 1.0, "EUR": 0.5}) == 4
        assert len(contexts) == calls
        for client, currency in zip(connected, currencies, strict=True):
            assert data(await client.receive()) == {"rate": {"USD": 1.0, "EUR": 0.5}[currency]}


# ----- Errors and masking --------------------------------------------------------------------

ERRORS = GUIDES / "errors.md"
MESSAGES = 'subscription { messagePosted(roomId: "1") { id author } }'
PINNED = 'subscription { pinnedMessage(roomId: "1") { id } }'


def posted(author_id: str, n: int = 1) -> dict[str, Any]:
    return {"id": str(n), "author_id": author_id, "text": "hi"}


def error_app(**options: Any) -> tuple[Any, Any]:
    """The errors example's app, or the same with a manager given `options` instead."""
    example = fresh_module("docs/examples/errors/app.py")
    if not options:
        return example, example.manager
    from fraiseql_fastapi import SubscriptionManager

    manager = SubscriptionManager(
        subscriptions=example.registry.fields, schema=example.schema, **options
    )
    app = FastAPI(lifespan=manager.lifespan)
    app.include_router(SubscriptionRouterFactory.create(manager, path="/graphql"))
    example.app, example.manager = app, manager
    return example, manager


def fraiseql_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fraiseql_fastapi"]


async def test_resolver_errors_are_the_pages_payloads_logged_once_per_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fraiseql_fastapi")
    masked, non_null, on_purpose, rewritten, _, invalid, _, _ = json_blocks(ERRORS)
    example, manager = error_app()
    async with running_server(example.app) as address, clients(address, None, None) as (a, b):
        for client in (a, b):
            await client.subscribe("1", MESSAGES)
        await a.subscribe("2", PINNED)
        await a.subscribe("3", "subscription { nope }")
        assert await a.receive() == invalid  # refused, the connection stays open
        await subscribed(manager, 3)
        # A secret in the exception: masked; both subscribers share one call, one record.
        assert await manager.publish("room:1", posted("zed")) == 3
        first = [await a.receive(), await a.receive()]
        assert sorted(first, key=lambda m: m["id"]) == [masked, non_null]
        assert await b.receive() == masked
        assert "hunter2" not in json.dumps(first)
        records = sorted(fraiseql_records(caplog), key=lambda r: r.getMessage())
        assert [(r.levelno, r.getMessage()) for r in records] == [
            (logging.ERROR, "resolver of 'messagePosted' failed"),
            (logging.ERROR, "resolver of 'pinnedMessage' failed"),
        ]
        assert records[0].exc_info is not None and "hunter2" in str(records[0].exc_info[1])
        assert "errors/app.py" in caplog.text, "logged with its traceback"
        assert manager.get_metrics()["resolver_errors"] == 2
        # The subscriptions go on.
        assert await manager.publish("room:1", posted("ann", 2)) == 3
        expected = {"messagePosted": {"id": "2", "author": "Ann Lee"}}
        assert data(await b.receive()) == expected
        nexts = sorted([await a.receive(), await a.receive()], key=lambda m: m["id"])
        assert [data(m) for m in nexts] == [expected, {"pinnedMessage": {"id": "2"}}]
        # A GraphQLError on purpose keeps its message and extensions; logged as a warning.
        caplog.clear()
        await a.send({"id": "2", "type": "complete"})
        await subscribed(manager, 2)
        assert await manager.publish("room:1", {"closed": True}) == 2
        assert await a.receive() == on_purpose and await b.receive() == on_purpose
        assert [(r.levelno, r.getMessage()) for r in fraiseql_records(caplog)] == [
            (logging.WARNING, "resolver of 'messagePosted' raised a GraphQL error")
        ]
        # format_error rewrites the timeout.
        assert await manager.publish("room:1", posted("slow")) == 2
        assert await a.receive() == rewritten and await b.receive() == rewritten


async def test_unmasked_errors_send_the_exceptions_text() -> None:
    unmasked = json_blocks(ERRORS)[4]
    example, manager = error_app(mask_errors=False)
    async with running_server(example.app) as address, clients(address, None) as (a,):
        await a.subscribe("1", MESSAGES)
        await subscribed(manager, 1)
        await manager.publish("room:1", posted("zed"))
        assert await a.receive() == unmasked


async def test_only_a_stream_failure_ends_a_subscription_with_error() -> None:
    lagged = json_blocks(ERRORS)[6]
    # A format_error that rewrites everything: the core's EVENTS_LAGGED is not its.
    example, manager = error_app(max_queue=3, format_error=lambda error: {"message": "x"})
    async with running_server(example.app) as address, clients(address, None) as (a,):
        await a.subscribe("1", 'subscription { messagePosted(roomId: "1") { id text } }')
        await subscribed(manager, 1)
        flood(manager, "room:1", lambda n, text: {"id": "1", "author_id": "ann", "text": text})
        *nexts, error = await until_ended(a)
        assert len(nexts) >= 3
        assert error == lagged
        await subscribed(manager, 0)


async def test_query_errors_are_masked_alike(caplog: pytest.LogCaptureFixture) -> None:
    answer = json_blocks(ERRORS)[7]
    example, _ = error_app()
    async with running_server(example.app) as address, httpx.AsyncClient() as http:
        response = await http.post(
            f"http://{address}/graphql", json={"query": '{ topic(roomId: "1") }'}
        )
    assert response.status_code == 200 and response.json() == answer
    ((record,),) = [fraiseql_records(caplog)]
    assert record.levelno == logging.ERROR and record.getMessage() == "resolver of topic failed"
