"""Pydantic-native results and the Decimal, Time and JSON scalars, end to end: `@subscription`
-> schema -> Rust core -> frames drained from a connection (as a transport would send them).

Results that are pydantic model instances are serialized by pydantic (JSON mode, by alias, as
FastAPI responses): field and model serializers, serialization aliases, alias generators and
computed fields apply; a field's serialization alias names its GraphQL output field.

No `from __future__ import annotations`: the classes below are read through their hints.
"""

import datetime
import decimal
import enum
import json
from typing import Any

import pytest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_serializer,
    model_serializer,
)
from pydantic.alias_generators import to_pascal

from fraiseql_fastapi import JSON, EventBusConfig, SubscriptionManager, subscription
from fraiseql_fastapi.conversion import args_to_json, from_graphql_args, to_jsonable
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.errors import SubscriptionDefinitionError
from fraiseql_fastapi.scalars import GraphQLDecimal, GraphQLJSON, GraphQLTime
from fraiseql_fastapi.schema import SubscriptionSchema

pytestmark = pytest.mark.anyio

registry = SubscriptionRegistry()


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


class Quote(BaseModel):
    """A quote: an alias, a serializer, a Decimal, a computed field and an enum."""

    symbol: str = Field(serialization_alias="ticker")
    price: decimal.Decimal
    quantity: int
    side: Side
    note: str = ""

    @field_serializer("symbol")
    def _upper(self, value: str) -> str:
        return value.upper()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> decimal.Decimal:
        return self.price * self.quantity


class Pascal(BaseModel):
    """Every field named by an alias generator."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True)

    room_id: str
    sent_at: datetime.time

    @computed_field  # type: ignore[prop-decorator]
    @property
    def room_label(self) -> str:
        return f"room {self.room_id}"


class Wrapped(BaseModel):
    """A model serializer (wrap mode) that changes a value."""

    label: str
    count: int

    @model_serializer(mode="wrap")
    def _double(self, handler: Any) -> Any:
        data = handler(self)
        data["count"] *= 2
        return data


class Price(BaseModel):
    """Serializers that change a field's type: the GraphQL type is what they return."""

    cents: int
    discount: int | None = None
    when: datetime.datetime

    @field_serializer("cents", "discount", when_used="unless-none")
    def _dollars(self, value: int) -> str:
        return f"${value / 100:.2f}"

    @field_serializer("when", return_type=int)
    def _timestamp(self, value: datetime.datetime) -> Any:
        return int(value.timestamp())


class Book(BaseModel):
    side: Side
    quotes: list[Quote]
    best: Quote | Pascal | None = None


@subscription(registry=registry, channel="quotes")
def quote(event: Any) -> Quote:
    return Quote.model_validate(event.data)


@subscription(registry=registry, channel="quotes")
def pascal(event: Any) -> Pascal:
    return Pascal(room_id=event.data["symbol"], sent_at=datetime.time(12, 30, 5))


@subscription(registry=registry, channel="quotes")
def wrapped(event: Any) -> Wrapped:
    return Wrapped(label="x", count=event.data["quantity"])


@subscription(registry=registry, channel="quotes")
def price(event: Any) -> Price:
    when = datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)
    return Price(cents=event.data["quantity"] * 110, when=when)


@subscription(registry=registry, channel="quotes")
def book(event: Any) -> Book:
    one = Quote.model_validate(event.data)
    return Book(side=Side.SELL, quotes=[one, one], best=Pascal(room_id="r", sent_at="01:02"))


@subscription(registry=registry, channel="quotes")
def quote_dict(event: Any) -> Quote:
    """A dict for a model: read by Python name, keyed by the alias the schema reads."""
    return event.data  # type: ignore[no-any-return]


@subscription(registry=registry, channel="quotes")
def scalars(
    event: Any,
    amount: decimal.Decimal,
    at: datetime.time,
    payload: JSON,
    extra: JSON | None = None,
) -> JSON:
    """Echoes its arguments, with their Python types, as a JSON value."""
    return {
        "amount": str(amount),
        "amount_type": type(amount).__name__,
        "at": at.isoformat(),
        "at_type": type(at).__name__,
        "payload": payload,
        "extra": extra,
    }


class Scalars(BaseModel):
    amount: decimal.Decimal
    at: datetime.time
    data: JSON
    ratio: decimal.Decimal


@subscription(registry=registry, channel="quotes")
def typed_scalars(event: Any, amount: decimal.Decimal, at: datetime.time) -> Scalars:
    data = {"n": [1, 2.5, None, "s"]}
    return Scalars(amount=amount * 2, at=at, data=data, ratio=decimal.Decimal("0.10"))


QUOTE = {"symbol": "abc", "price": "1.10", "quantity": 3, "side": "buy"}


async def deliver(
    query: str, variables: dict[str, Any] | None = None, data: Any = QUOTE
) -> list[Any]:
    """Subscribes `query` on a fresh manager, publishes one event on "quotes" and returns the
    frames the connection holds (parsed)."""
    manager = SubscriptionManager(EventBusConfig.memory(), subscriptions=registry.fields)
    prepared = manager.prepare(query, None, variables)
    assert not isinstance(prepared, list), prepared
    connection = manager.connect()
    assert connection.subscribe("1", prepared) is None
    assert await manager.publish("quotes", data, event_type="quote") == 1
    return [json.loads(frame) for frame in connection.drain()]


def next_data(frames: list[Any]) -> Any:
    assert len(frames) == 1, frames
    (frame,) = frames
    assert frame["type"] == "next" and frame["id"] == "1", frame
    assert "errors" not in frame["payload"], frame
    return frame["payload"]["data"]


# --- schema -----------------------------------------------------------------------------------


def test_output_fields_are_named_by_serialization_alias_inputs_by_python_name() -> None:
    sdl = SubscriptionSchema(registry.fields).print_schema()
    assert "type Quote {\n" in sdl
    quote_type = sdl.split("type Quote {")[1].split("}")[0]
    assert "ticker: String!" in quote_type and "symbol" not in quote_type
    assert "total: Decimal!" in quote_type and "price: Decimal!" in quote_type
    pascal_type = sdl.split("type Pascal {")[1].split("}")[0]
    assert "RoomId: String!" in pascal_type and "SentAt: Time!" in pascal_type
    assert "RoomLabel: String!" in pascal_type
    for scalar in ("scalar Decimal", "scalar Time", "scalar JSON"):
        assert scalar in sdl
    assert "payload: JSON!" in sdl and "amount: Decimal!" in sdl and "at: Time!" in sdl


def test_core_type_info_reads_aliases_as_source_keys() -> None:
    info = SubscriptionSchema(registry.fields).core_type_info()["types"]
    assert info["Quote"]["fields"]["ticker"] == {"type": "String!", "source": "ticker"}
    assert info["Quote"]["fields"]["price"]["source"] == "price"
    assert info["Pascal"]["fields"]["RoomId"]["source"] == "RoomId"
    for name in ("Decimal", "Time", "JSON"):
        assert info[name] == {"kind": "SCALAR"}


def test_an_alias_that_is_no_graphql_name_is_refused() -> None:
    class Bad(BaseModel):
        value: int = Field(serialization_alias="the-value")

    with pytest.raises(SubscriptionDefinitionError, match="Bad: field alias 'the-value'"):

        @subscription(registry=SubscriptionRegistry(), channel="c")
        def bad(event: Any) -> Bad:
            return Bad(value=1)


def test_reserved_scalar_names() -> None:
    class Decimal(BaseModel):  # a clash on purpose
        value: int

    with pytest.raises(
        SubscriptionDefinitionError, match="two different types are named 'Decimal'"
    ):

        @subscription(registry=SubscriptionRegistry(), channel="c")
        def clash(event: Any) -> Decimal:
            return Decimal(value=1)


# --- results, end to end --------------------------------------------------------------------


async def test_field_serializer_alias_decimal_computed_field_and_enum_through_frames() -> None:
    data = next_data(await deliver("subscription { quote { ticker price quantity side total } }"))
    assert data == {
        "quote": {"ticker": "ABC", "price": "1.10", "quantity": 3, "side": "BUY", "total": "3.30"}
    }


async def test_alias_generator_computed_field_and_time_through_frames() -> None:
    data = next_data(await deliver("subscription { pascal { RoomId SentAt RoomLabel } }"))
    assert data == {"pascal": {"RoomId": "abc", "SentAt": "12:30:05", "RoomLabel": "room abc"}}


def test_a_field_serializers_return_type_is_the_output_type() -> None:
    sdl = SubscriptionSchema(registry.fields).print_schema()
    price_type = sdl.split("type Price {")[1].split("}")[0]
    assert "cents: String!" in price_type
    assert "discount: String\n" in price_type  # nullable, as the field is
    assert "when: Int!" in price_type


async def test_field_serializers_changing_the_type_through_frames() -> None:
    data = next_data(await deliver("subscription { price { cents discount when } }"))
    assert data == {"price": {"cents": "$3.30", "discount": None, "when": 1714521600}}


async def test_model_serializer_through_frames() -> None:
    data = next_data(await deliver("subscription { wrapped { label count } }"))
    assert data == {"wrapped": {"label": "x", "count": 6}}


async def test_nested_lists_unions_and_enums_through_frames() -> None:
    query = """subscription { book { side quotes { ticker side total }
        best { __typename ... on Pascal { RoomId SentAt } ... on Quote { ticker } } } }"""
    data = next_data(await deliver(query))
    expected_quote = {"ticker": "ABC", "side": "BUY", "total": "3.30"}
    assert data == {
        "book": {
            "side": "SELL",
            "quotes": [expected_quote, expected_quote],
            "best": {"__typename": "Pascal", "RoomId": "r", "SentAt": "01:02:00"},
        }
    }


async def test_a_dict_for_a_model_is_read_by_python_name() -> None:
    data = next_data(await deliver("subscription { quoteDict { ticker price side } }"))
    # No serializer runs on a dict (it is no model instance): values are converted by type.
    assert data == {"quoteDict": {"ticker": "abc", "price": "1.10", "side": "BUY"}}


def test_to_jsonable_of_model_instances_is_pydantic_json_by_alias() -> None:
    quote_value = Quote.model_validate(QUOTE)
    assert to_jsonable(quote_value, Quote) == {
        "ticker": "ABC",
        "price": "1.10",
        "quantity": 3,
        "side": "BUY",
        "note": "",
        "total": "3.30",
    }
    assert to_jsonable([quote_value], list[Quote])[0]["ticker"] == "ABC"
    assert to_jsonable(None, Quote | None) is None


# --- the new scalars as arguments and results ------------------------------------------------


async def test_decimal_time_and_json_arguments_and_json_result_through_frames() -> None:
    query = """subscription ($payload: JSON!) {
        scalars(amount: "12.50", at: "08:15:00Z", payload: $payload, extra: {a: [1, "b", null]})
    }"""
    payload = {"nested": {"list": [1, 2.5, True, None]}, "s": "x"}
    data = next_data(await deliver(query, {"payload": payload}))
    assert data == {
        "scalars": {
            "amount": "12.50",
            "amount_type": "Decimal",
            "at": "08:15:00+00:00",
            "at_type": "time",
            "payload": payload,
            "extra": {"a": [1, "b", None]},
        }
    }


@pytest.mark.parametrize("amount", ["1.25", 1.25, "1.250"])
async def test_decimal_accepts_strings_and_numbers(amount: Any) -> None:
    query = """subscription ($amount: Decimal!) {
        typedScalars(amount: $amount, at: "10:00") { amount at data ratio } }"""
    data = next_data(await deliver(query, {"amount": amount}))
    doubled = str(decimal.Decimal(str(amount)) * 2)
    assert data == {
        "typedScalars": {
            "amount": doubled,
            "at": "10:00:00",
            "data": {"n": [1, 2.5, None, "s"]},
            "ratio": "0.10",
        }
    }


async def test_decimal_int_literal() -> None:
    query = 'subscription { typedScalars(amount: 3, at: "10:00:00.5") { amount at } }'
    data = next_data(await deliver(query))
    assert data == {"typedScalars": {"amount": "6", "at": "10:00:00.500000"}}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('subscription { typedScalars(amount: "x", at: "10:00") { amount } }', "Decimal"),
        ('subscription { typedScalars(amount: "NaN", at: "10:00") { amount } }', "Decimal"),
        ('subscription { typedScalars(amount: true, at: "10:00") { amount } }', "Decimal"),
        ('subscription { typedScalars(amount: 1, at: "25:00") { amount } }', "Time"),
        ("subscription { typedScalars(amount: 1, at: 10) { amount } }", "Time"),
    ],
)
def test_bad_scalar_literals_are_refused(query: str, message: str) -> None:
    errors = SubscriptionSchema(registry.fields).prepare(query, None, None)
    assert isinstance(errors, list) and message in errors[0].message


def test_scalar_functions() -> None:
    assert GraphQLDecimal.serialize(decimal.Decimal("1.10")) == "1.10"
    assert GraphQLDecimal.serialize(2) == "2"
    assert GraphQLDecimal.parse_value(0.1) == decimal.Decimal("0.1")
    assert GraphQLTime.serialize(datetime.time(1, 2)) == "01:02:00"
    assert GraphQLTime.parse_value("01:02:03Z") == datetime.time(
        1, 2, 3, tzinfo=datetime.timezone.utc
    )
    assert GraphQLJSON.serialize({"a": [1]}) == {"a": [1]}


def test_arguments_as_json_and_back() -> None:
    (field,) = [f for f in registry.fields if f.name == "scalars"]
    coerced = {
        "amount": decimal.Decimal("1.5"),
        "at": datetime.time(8, 0),
        "payload": {"k": [1]},
        "extra": None,
    }
    as_json = args_to_json(field, coerced)
    assert as_json == {"amount": "1.5", "at": "08:00:00", "payload": {"k": [1]}, "extra": None}
    assert from_graphql_args(field, as_json) == coerced
    assert from_graphql_args(field, coerced) == coerced


def test_decimal_and_time_fields_of_input_objects() -> None:
    class Order(BaseModel):
        price: decimal.Decimal
        at: datetime.time | None = None

    local = SubscriptionRegistry()

    @subscription(registry=local, channel="c")
    def orders(event: Any, order: Order) -> Order:
        return order

    (field,) = local.fields
    sdl = SubscriptionSchema(local.fields).print_schema()
    assert "price: Decimal!" in sdl and "at: Time" in sdl
    assert from_graphql_args(field, {"order": {"price": "2.50", "at": "09:00:00"}}) == {
        "order": Order(price=decimal.Decimal("2.50"), at=datetime.time(9))
    }


# --- excluded fields --------------------------------------------------------------------------


class Account(BaseModel):
    """A field that pydantic leaves out of results (`exclude=True`)."""

    name: str
    password: str = Field(exclude=True)


def test_an_excluded_field_is_an_input_only() -> None:
    excluded = SubscriptionRegistry()

    @subscription(registry=excluded, channel="accounts")
    def account_changed(event: Any, filter: Account) -> Account:
        return Account.model_validate(event.data)

    sdl = SubscriptionSchema(excluded.fields).print_schema()
    assert "type Account {\n  name: String!\n}" in sdl.replace('  """', "")
    assert "input AccountInput {" in sdl
    assert "password: String!" in sdl.split("input AccountInput {")[1].split("}")[0]


async def test_an_excluded_field_is_never_sent() -> None:
    excluded = SubscriptionRegistry()

    @subscription(registry=excluded, channel="accounts")
    def account_changed(event: Any) -> Account:
        return Account(name=event.data["name"], password="secret")

    manager = SubscriptionManager(EventBusConfig.memory(), subscriptions=excluded.fields)
    refused = manager.prepare("subscription { accountChanged { name password } }", None, None)
    assert isinstance(refused, list)
    assert "Cannot query field 'password' on type 'Account'" in refused[0].message
    prepared = manager.prepare("subscription { accountChanged { name } }", None, None)
    assert not isinstance(prepared, list)
    connection = manager.connect()
    assert connection.subscribe("1", prepared) is None
    assert await manager.publish("accounts", {"name": "ann"}) == 1
    (frame,) = [json.loads(text) for text in connection.drain()]
    assert frame["payload"] == {"data": {"accountChanged": {"name": "ann"}}}
