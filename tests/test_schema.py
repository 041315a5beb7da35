"""Tests for the GraphQL schema (fraiseql_fastapi.schema) and the type mapping and value
conversions it relies on (fraiseql_fastapi.type_mapping, fraiseql_fastapi.conversion).

No `from __future__ import annotations`: the classes below are read through their hints.
"""

import asyncio
import dataclasses
import datetime
import enum
import re
import textwrap
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, List, NewType, Optional, TypedDict  # noqa: UP035

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLString,
    build_client_schema,
    build_schema,
    get_introspection_query,
    print_schema,
)
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError, field_validator
from typing_extensions import NotRequired

from fraiseql_fastapi.conversion import args_to_json, from_graphql_args, to_jsonable
from fraiseql_fastapi.decorator import SubscriptionField, SubscriptionRegistry, subscription
from fraiseql_fastapi.errors import SubscriptionDefinitionError
from fraiseql_fastapi.hints import JSON
from fraiseql_fastapi.names import ID, camel_case
from fraiseql_fastapi.scalars import GraphQLDate, GraphQLDateTime, GraphQLUUID, PythonEnumType
from fraiseql_fastapi.schema import PreparedOperation, SubscriptionSchema, _describe_reachable
from fraiseql_fastapi.type_mapping import TypeMapper

# --- a realistic set of resolvers -----------------------------------------------------------


class Message(BaseModel):
    """A chat message."""

    id: ID
    room_id: str
    text: str = Field(description="What was said.")
    sent_at: datetime.datetime


class Tick(BaseModel):
    id: ID
    channel: str
    value: int
    ts: float | None = None


class OrderStatus(enum.Enum):
    """Where an order is."""

    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"


@dataclasses.dataclass
class LineItem:
    sku: str
    quantity: int = dataclasses.field(metadata={"description": "How many."})


@dataclasses.dataclass
class Order:
    """An order and its items."""

    id: uuid.UUID
    status: OrderStatus
    items: list[LineItem]
    delivery_date: datetime.date | None = None


class SearchFilter(TypedDict):
    text: str
    rooms: NotRequired[list[str]]


registry = SubscriptionRegistry()


@subscription(channel="room:{room_id}", registry=registry)
async def message_posted(event: Any, room_id: str, context: Any) -> Message | None:
    """New messages in a room."""
    return Message(**event.data)


@subscription(channel="{channel}", registry=registry)
def ticks(event: Any, channel: str) -> Tick:
    return Tick(**event.data)


@subscription(channel="orders", registry=registry)
def order_updated(
    event: Any, statuses: list[OrderStatus] | None = None, min_items: int = 1
) -> Order:
    """Orders whose status changed."""
    return Order(**event.data)


@subscription(channel="search", registry=registry)
def search(event: Any, where: SearchFilter) -> list[Message | Tick]:
    return []


@pytest.fixture
def schema() -> SubscriptionSchema:
    return SubscriptionSchema(registry.fields)


def field_named(name: str) -> SubscriptionField:
    return next(field for field in registry.fields if field.name == name)


def prepared_ok(result: PreparedOperation | list[GraphQLError]) -> PreparedOperation:
    assert isinstance(result, PreparedOperation), [e.formatted for e in result]  # type: ignore[union-attr]
    return result


def errors_of(result: PreparedOperation | list[GraphQLError]) -> list[dict[str, Any]]:
    assert isinstance(result, list), result
    return [error.formatted for error in result]


SDL = '''
type Query {
  """The names of the subscription fields this server offers."""
  _subscriptions: [String!]!
}

type Subscription {
  """New messages in a room."""
  messagePosted(roomId: String!): Message
  ticks(channel: String!): Tick!

  """Orders whose status changed."""
  orderUpdated(statuses: [OrderStatus!], minItems: Int! = 1): Order!
  search(where: SearchFilterInput!): [MessageOrTick!]!
}

"""A chat message."""
type Message {
  id: ID!
  roomId: String!

  """What was said."""
  text: String!
  sentAt: DateTime!
}

"""An ISO 8601 date and time, e.g. 2024-05-01T12:30:00+00:00."""
scalar DateTime @specifiedBy(url: "https://datatracker.ietf.org/doc/html/rfc3339")

type Tick {
  id: ID!
  channel: String!
  value: Int!
  ts: Float
}

"""An order and its items."""
type Order {
  id: UUID!
  status: OrderStatus!
  items: [LineItem!]!
  deliveryDate: Date
}

"""A UUID, e.g. 3f2504e0-4f89-11d3-9a0c-0305e82c3301."""
scalar UUID @specifiedBy(url: "https://datatracker.ietf.org/doc/html/rfc4122")

"""Where an order is."""
enum OrderStatus {
  PENDING
  PAID
  SHIPPED
}

type LineItem {
  sku: String!

  """How many."""
  quantity: Int!
}

"""An ISO 8601 calendar date, e.g. 2024-05-01."""
scalar Date @specifiedBy(url: "https://datatracker.ietf.org/doc/html/rfc3339")

union MessageOrTick = Message | Tick

input SearchFilterInput {
  text: String!
  rooms: [String!]
}
'''


def test_print_schema_gives_the_sdl_of_the_resolvers(schema: SubscriptionSchema) -> None:
    assert schema.print_schema() == SDL.strip()


def test_core_type_info_describes_every_output_type_reachable_from_subscription(
    schema: SubscriptionSchema,
) -> None:
    assert schema.core_type_info() == {
        "subscription_type": "Subscription",
        "types": {
            "Subscription": {
                "kind": "OBJECT",
                "fields": {
                    "messagePosted": {"type": "Message", "source": "message_posted"},
                    "ticks": {"type": "Tick!", "source": "ticks"},
                    "orderUpdated": {"type": "Order!", "source": "order_updated"},
                    "search": {"type": "[MessageOrTick!]!", "source": "search"},
                },
            },
            "Message": {
                "kind": "OBJECT",
                "fields": {
                    "id": {"type": "ID!", "source": "id"},
                    "roomId": {"type": "String!", "source": "room_id"},
                    "text": {"type": "String!", "source": "text"},
                    "sentAt": {"type": "DateTime!", "source": "sent_at"},
                },
            },
            "Tick": {
                "kind": "OBJECT",
                "fields": {
                    "id": {"type": "ID!", "source": "id"},
                    "channel": {"type": "String!", "source": "channel"},
                    "value": {"type": "Int!", "source": "value"},
                    "ts": {"type": "Float", "source": "ts"},
                },
            },
            "Order": {
                "kind": "OBJECT",
                "fields": {
                    "id": {"type": "UUID!", "source": "id"},
                    "status": {"type": "OrderStatus!", "source": "status"},
                    "items": {"type": "[LineItem!]!", "source": "items"},
                    "deliveryDate": {"type": "Date", "source": "delivery_date"},
                },
            },
            "MessageOrTick": {"kind": "UNION", "possible_types": ["Message", "Tick"]},
            "DateTime": {"kind": "SCALAR"},
            "UUID": {"kind": "SCALAR"},
            "OrderStatus": {"kind": "ENUM", "values": ["PENDING", "PAID", "SHIPPED"]},
            "LineItem": {
                "kind": "OBJECT",
                "fields": {
                    "sku": {"type": "String!", "source": "sku"},
                    "quantity": {"type": "Int!", "source": "quantity"},
                },
            },
            "Date": {"kind": "SCALAR"},
        },
    }


def test_type_info_of_interfaces_lists_fields_and_possible_types() -> None:
    # Hints never produce interfaces; the description is generic over the GraphQL schema.
    sdl = """
        type Query { a: Int }
        interface Node { id: ID! }
        type User implements Node { id: ID! name: String }
        type Subscription { node: Node }
    """
    described = _describe_reachable(build_schema(sdl), build_schema(sdl).subscription_type)  # type: ignore[arg-type]
    assert described["Node"] == {
        "kind": "INTERFACE",
        "fields": {"id": {"type": "ID!", "source": "id"}},
        "possible_types": ["User"],
    }
    assert described["User"]["fields"]["name"] == {"type": "String", "source": "name"}


def test_output_fields_that_default_to_none_are_nullable() -> None:
    """As the inputs are: a field whose default is None may hold None."""
    own = SubscriptionRegistry()

    @dataclasses.dataclass
    class Venue:
        name: str
        city: str = None  # type: ignore[assignment]

    class Trade(BaseModel):
        price: int
        venue: Venue = None  # type: ignore[assignment]
        note: JSON = None

    @subscription(channel="trades", registry=own)
    def trades(event: Any) -> Trade:
        return Trade(price=1)

    sdl = SubscriptionSchema(own.fields).print_schema()
    assert "type Venue {\n  name: String!\n  city: String\n}" in sdl
    assert "type Trade {\n  price: Int!\n  venue: Venue\n  note: JSON\n}" in sdl


def test_a_schema_without_subscriptions_still_answers_queries() -> None:
    empty = SubscriptionSchema([])
    assert empty.core_type_info() == {"subscription_type": None, "types": {}}
    result = asyncio.run(empty.execute(prepared_ok(empty.prepare("{ _subscriptions }"))))
    assert result.formatted == {"data": {"_subscriptions": []}}


def test_fields_from_two_registries_with_one_name_are_an_error() -> None:
    other = SubscriptionRegistry()

    @subscription(name="ticks", registry=other)
    def other_ticks(event: Any) -> int:
        return 0

    with pytest.raises(SubscriptionDefinitionError) as error:
        SubscriptionSchema([*registry.fields, *other.fields])
    assert str(error.value) == (
        "other_ticks: a subscription named 'ticks' is already defined by ticks"
    )


def test_query_fields_are_added_and_cannot_take_the_reserved_name() -> None:
    async def resolve_echo(_root: Any, _info: Any, text: str) -> str:
        await asyncio.sleep(0)
        return text.upper()

    echo = GraphQLField(
        GraphQLNonNull(GraphQLString),
        {"text": GraphQLArgument(GraphQLNonNull(GraphQLString))},
        resolve=resolve_echo,
    )
    with_query = SubscriptionSchema(registry.fields, query_fields={"echo": echo})
    prepared = prepared_ok(
        with_query.prepare("query ($t: String!) { echo(text: $t) }", None, {"t": "hi"})
    )
    result = asyncio.run(with_query.execute(prepared))
    assert result.formatted == {"data": {"echo": "HI"}}
    with pytest.raises(SubscriptionDefinitionError, match="'_subscriptions' is reserved"):
        SubscriptionSchema(registry.fields, query_fields={"_subscriptions": echo})


# --- type mapping ---------------------------------------------------------------------------

UserId = NewType("UserId", str)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x_value: float
    y_value: float = 0.0


class Size(TypedDict):
    width: int
    height: int


OUTPUTS: list[tuple[Any, str]] = [
    (str, "String!"),
    (int, "Int!"),
    (float, "Float!"),
    (bool, "Boolean!"),
    (ID, "ID!"),
    (uuid.UUID, "UUID!"),
    (datetime.datetime, "DateTime!"),
    (datetime.date, "Date!"),
    (Color, "Color!"),
    (Optional[int], "Int"),  # noqa: UP045
    (int | None, "Int"),
    (list[int], "[Int!]!"),
    (List[int], "[Int!]!"),  # noqa: UP006
    (Sequence[str], "[String!]!"),
    (tuple[bool, ...], "[Boolean!]!"),
    (list[int | None], "[Int]!"),
    (list[int] | None, "[Int!]"),
    (list[int | None] | None, "[Int]"),
    (Optional[List[Optional[int]]], "[Int]"),  # noqa: UP006, UP045
    (list[list[str] | None], "[[String!]]!"),
    (Annotated[int, "metadata"], "Int!"),
    (Annotated[int | None, "metadata"], "Int"),
    (UserId, "String!"),
    (Message, "Message!"),
    (Point, "Point!"),
    (Size, "Size!"),
    (Message | Tick, "MessageOrTick!"),
    (Message | Tick | None, "MessageOrTick"),
]


@pytest.mark.parametrize(("hint", "expected"), OUTPUTS, ids=[e for _, e in OUTPUTS])
def test_output_types(hint: Any, expected: str) -> None:
    assert str(TypeMapper().output_type(hint)) == expected


INPUTS: list[tuple[Any, str]] = [
    (str, "String!"),
    (ID, "ID!"),
    (uuid.UUID, "UUID!"),
    (datetime.datetime, "DateTime!"),
    (datetime.date, "Date!"),
    (Color, "Color!"),
    (list[Color | None] | None, "[Color]"),
    (Message, "MessageInput!"),
    (Point | None, "PointInput"),
    (list[Size], "[SizeInput!]!"),
]


@pytest.mark.parametrize(("hint", "expected"), INPUTS, ids=[e for _, e in INPUTS])
def test_input_types(hint: Any, expected: str) -> None:
    assert str(TypeMapper().input_type(hint)) == expected


def test_one_class_maps_to_one_type_per_direction() -> None:
    mapper = TypeMapper()
    output = mapper.output_type(Point)
    assert mapper.output_type(list[Point]).of_type.of_type.of_type is output.of_type  # type: ignore[attr-defined]
    assert mapper.input_type(Point).of_type.name == "PointInput"  # type: ignore[attr-defined]
    assert mapper.output_type(Color).of_type is mapper.input_type(Color).of_type  # type: ignore[attr-defined]


class TreeNode(BaseModel):
    label: str
    children: list["TreeNode"] = []
    parent: Optional["TreeNode"] = None


@dataclasses.dataclass
class Author:
    name: str
    posts: list["Post"]


@dataclasses.dataclass
class Post:
    title: str
    author: Author | None


def test_self_referencing_and_mutually_recursive_classes() -> None:
    reg = SubscriptionRegistry()

    @subscription(registry=reg)
    def tree(event: Any, shape: TreeNode) -> TreeNode:
        return shape

    @subscription(registry=reg)
    def posts(event: Any) -> Author:
        return Author("a", [])

    sdl = SubscriptionSchema(reg.fields).print_schema()
    assert (
        "type TreeNode {\n  label: String!\n  children: [TreeNode!]!\n  parent: TreeNode\n}" in sdl
    )
    assert "input TreeNodeInput {\n  label: String!\n  children: [TreeNodeInput!]! = []\n" in sdl
    assert "type Author {\n  name: String!\n  posts: [Post!]!\n}" in sdl
    assert "type Post {\n  title: String!\n  author: Author\n}" in sdl
    assert to_jsonable(TreeNode(label="root", children=[TreeNode(label="leaf")]), TreeNode) == {
        "label": "root",
        "children": [{"label": "leaf", "children": [], "parent": None}],
        "parent": None,
    }


class Draft(BaseModel):
    """A message before it is posted."""

    text: str
    tags: list[str] = Field(default_factory=list, description="Free-form tags.")
    priority: int = 0
    color: Color = Color.GREEN
    note: str | None = None

    @property
    def length(self) -> int:
        return len(self.text)


def test_input_objects_defaults_and_descriptions() -> None:
    reg = SubscriptionRegistry()

    @subscription(registry=reg)
    def drafts(event: Any, draft: Draft) -> Draft:
        return draft

    sdl = SubscriptionSchema(reg.fields).print_schema()
    assert (
        textwrap.dedent(
            '''
        """A message before it is posted."""
        input DraftInput {
          text: String!

          """Free-form tags."""
          tags: [String!]
          priority: Int! = 0
          color: Color! = GREEN
          note: String
        }
        '''
        ).strip()
        in sdl
    )


def test_descriptions_from_docstrings_and_fields(schema: SubscriptionSchema) -> None:
    types = schema.graphql_schema.type_map
    assert types["Message"].description == "A chat message."
    assert types["Message"].fields["text"].description == "What was said."  # type: ignore[attr-defined]
    assert types["LineItem"].fields["quantity"].description == "How many."  # type: ignore[attr-defined]
    assert types["LineItem"].description is None  # not the dataclass's generated signature
    assert types["OrderStatus"].description == "Where an order is."


def test_field_names_that_clash_once_camel_cased_are_an_error() -> None:
    @dataclasses.dataclass
    class Clash:
        user_id: str
        userId: str

    with pytest.raises(SubscriptionDefinitionError) as error:
        TypeMapper().output_type(Clash)
    assert (
        str(error.value) == "Clash: fields 'user_id' and 'userId' both become 'userId' in GraphQL"
    )


def test_a_union_member_must_be_a_model_or_dataclass() -> None:
    with pytest.raises(SubscriptionDefinitionError, match="union member Size is not a pydantic"):
        TypeMapper().output_type(Message | Size)


def test_a_class_named_like_a_builtin_type_is_an_error() -> None:
    @dataclasses.dataclass
    class Date:
        day: int

    with pytest.raises(SubscriptionDefinitionError, match="two different types are named 'Date'"):
        TypeMapper(reserved_names=["Date"]).output_type(Date)


def test_invalid_enum_members_are_an_error() -> None:
    class Bad(enum.Enum):
        null = 1

    with pytest.raises(SubscriptionDefinitionError, match="member 'null' cannot be a GraphQL"):
        TypeMapper().output_type(Bad)


# --- scalars and enums ----------------------------------------------------------------------


def test_enum_serializes_members_values_and_names() -> None:
    color = PythonEnumType(Color)
    assert color.serialize(Color.RED) == "RED"
    assert color.serialize("red") == "RED"
    assert color.serialize("RED") == "RED"
    assert color.parse_value("GREEN") is Color.GREEN
    with pytest.raises(GraphQLError, match="Enum 'Color' cannot represent value: 'blue'"):
        color.serialize("blue")


def test_uuid_scalar() -> None:
    value = uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    assert GraphQLUUID.serialize(value) == str(value)
    assert GraphQLUUID.serialize(str(value).upper()) == str(value)
    assert GraphQLUUID.parse_value(str(value)) == value
    with pytest.raises(GraphQLError, match="UUID cannot represent value: 'nope'"):
        GraphQLUUID.parse_value("nope")
    with pytest.raises(GraphQLError, match="UUID cannot represent non-string value: 5"):
        GraphQLUUID.parse_value(5)


def test_datetime_scalar_reads_iso_8601_including_z() -> None:
    utc = datetime.timezone.utc
    moment = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=utc)
    assert GraphQLDateTime.serialize(moment) == "2024-05-01T12:30:00+00:00"
    assert GraphQLDateTime.parse_value("2024-05-01T12:30:00Z") == moment
    assert GraphQLDateTime.parse_value("2024-05-01T14:30:00+02:00") == moment
    with pytest.raises(GraphQLError, match="DateTime cannot represent value: 'May 1st'"):
        GraphQLDateTime.parse_value("May 1st")


def test_date_scalar_does_not_drop_the_time_of_a_datetime() -> None:
    assert GraphQLDate.serialize(datetime.date(2024, 5, 1)) == "2024-05-01"
    assert GraphQLDate.parse_value("2024-05-01") == datetime.date(2024, 5, 1)
    with pytest.raises(GraphQLError, match="Date cannot represent value"):
        GraphQLDate.serialize(datetime.datetime(2024, 5, 1, 12, 0))


# --- prepare --------------------------------------------------------------------------------


def test_prepare_a_subscription(schema: SubscriptionSchema) -> None:
    query = "subscription OnMessage($room: String!) { m: messagePosted(roomId: $room) { id text } }"
    prepared = prepared_ok(schema.prepare(query, "OnMessage", {"room": "42"}))
    assert prepared.kind == "subscription"
    assert prepared.query == query
    assert prepared.operation_name == "OnMessage"
    assert prepared.variables == {"room": "42"}
    assert prepared.variable_values == {"room": "42"}
    assert prepared.field is field_named("messagePosted")
    assert prepared.field_node is not None and prepared.field_node.name.value == "messagePosted"
    assert prepared.response_key == "m"
    assert prepared.args == {"roomId": "42"}
    assert prepared.resolver_args == {"room_id": "42"}
    assert prepared.field.channels(prepared.resolver_args) == ["room:42"]


def test_prepare_applies_argument_defaults_and_coerces_enums(schema: SubscriptionSchema) -> None:
    prepared = prepared_ok(
        schema.prepare("subscription { orderUpdated(statuses: [PAID, SHIPPED]) { id } }")
    )
    assert prepared.args == {
        "statuses": [OrderStatus.PAID, OrderStatus.SHIPPED],
        "minItems": 1,
    }
    assert prepared.resolver_args == {
        "statuses": [OrderStatus.PAID, OrderStatus.SHIPPED],
        "min_items": 1,
    }
    assert args_to_json(field_named("orderUpdated"), prepared.args) == {
        "statuses": ["PAID", "SHIPPED"],
        "minItems": 1,
    }


def test_prepare_a_subscription_selected_through_a_fragment(schema: SubscriptionSchema) -> None:
    query = """
        subscription { ...Root }
        fragment Root on Subscription { ticks(channel: "a") { value } }
    """
    prepared = prepared_ok(schema.prepare(query))
    assert prepared.field is field_named("ticks")
    assert prepared.args == {"channel": "a"}


OPERATIONS = """
    query Names { _subscriptions }
    subscription Ticks { ticks(channel: "a") { value } }
    subscription Messages { messagePosted(roomId: "r") { id } }
"""


@pytest.mark.parametrize(
    ("name", "kind", "field"),
    [
        ("Names", "query", None),
        ("Ticks", "subscription", "ticks"),
        ("Messages", "subscription", "messagePosted"),
    ],
)
def test_operation_name_selects_the_operation(
    schema: SubscriptionSchema, name: str, kind: str, field: str | None
) -> None:
    prepared = prepared_ok(schema.prepare(OPERATIONS, name))
    assert prepared.kind == kind
    assert prepared.operation_name == name
    assert (prepared.field.name if prepared.field else None) == field


@pytest.mark.parametrize(
    ("query", "name", "message"),
    [
        (OPERATIONS, None, "Must provide operation name if query contains multiple operations."),
        (OPERATIONS, "Nope", "Unknown operation named 'Nope'."),
        ("{ _subscriptions }", "Names", "Unknown operation named 'Names'."),
    ],
)
def test_operation_name_errors(
    schema: SubscriptionSchema, query: str, name: str | None, message: str
) -> None:
    assert errors_of(schema.prepare(query, name)) == [{"message": message}]


def test_syntax_errors(schema: SubscriptionSchema) -> None:
    assert errors_of(schema.prepare("subscription {")) == [
        {
            "message": "Syntax Error: Expected Name, found <EOF>.",
            "locations": [{"line": 1, "column": 15}],
        }
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            'subscription { ticks(channel: "a") { nope } }',
            "Cannot query field 'nope' on type 'Tick'.",
        ),
        (
            "subscription { ticks { value } }",
            "Argument 'Subscription.ticks(channel:)' of type 'String!' is required, but it was "
            "not provided.",
        ),
        (
            'subscription { ticks(channel: "a") { value } messagePosted(roomId: "r") { id } }',
            "Anonymous Subscription must select only one top level field.",
        ),
        (
            "subscription { __typename }",
            "Anonymous Subscription must not select an introspection top level field.",
        ),
        ("mutation { ticks }", "The mutation operation is not supported by the schema."),
        (
            "subscription { orderUpdated(statuses: [LOST]) { id } }",
            "Value 'LOST' does not exist in 'OrderStatus' enum.",
        ),
        (
            "subscription { messagePosted(roomId: 42) { id } }",
            "String cannot represent a non string value: 42",
        ),
    ],
)
def test_validation_errors(schema: SubscriptionSchema, query: str, message: str) -> None:
    errors = errors_of(schema.prepare(query))
    assert errors[0]["message"].startswith(message), errors
    assert errors[0]["locations"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {},
            "Variable '$room' has invalid value: Expected a value of non-null type 'String!' "
            "to be provided.",
        ),
        (
            {"room": None},
            "Variable '$room' has invalid value: Expected value of non-null type 'String!' not "
            "to be None.",
        ),
        (
            {"room": 42},
            "Variable '$room' has invalid value: String cannot represent a non string value: 42",
        ),
        (
            {"room": ["a"]},
            "Variable '$room' has invalid value: String cannot represent a non string value: ['a']",
        ),
    ],
)
def test_variable_coercion_errors(
    schema: SubscriptionSchema, variables: dict[str, Any], message: str
) -> None:
    query = "subscription ($room: String!) { messagePosted(roomId: $room) { id } }"
    assert errors_of(schema.prepare(query, None, variables)) == [
        {"message": message, "locations": [{"line": 1, "column": 15}]}
    ]


def test_variables_of_input_objects(schema: SubscriptionSchema) -> None:
    query = "subscription ($w: SearchFilterInput!) { search(where: $w) { __typename } }"
    prepared = prepared_ok(schema.prepare(query, None, {"w": {"text": "hi", "rooms": ["a"]}}))
    assert prepared.resolver_args == {"where": {"text": "hi", "rooms": ["a"]}}
    errors = errors_of(schema.prepare(query, None, {"w": {"rooms": "a", "nope": 1}}))
    prefix = "Variable '$w' has invalid value: Expected value of type 'SearchFilterInput' "
    found = ", found: {'rooms': 'a', 'nope': 1}."
    assert [error["message"] for error in errors] == [
        prefix + "to include required field 'text'" + found,
        prefix + "not to include unknown field 'nope'" + found,
    ]
    # A single value where a list is expected is a list of one, by GraphQL's input coercion.
    prepared = prepared_ok(schema.prepare(query, None, {"w": {"text": "hi", "rooms": "a"}}))
    assert prepared.resolver_args == {"where": {"text": "hi", "rooms": ["a"]}}


def test_variables_must_be_an_object(schema: SubscriptionSchema) -> None:
    assert errors_of(schema.prepare("{ _subscriptions }", None, ["x"])) == [  # type: ignore[arg-type]
        {"message": "Variables must be provided as an object of variable values."}
    ]


def test_skip_and_include_on_the_root_field_are_refused(schema: SubscriptionSchema) -> None:
    # GraphQL (graphql-core 3.3) forbids them: which field a subscription has must not depend
    # on variables. On 3.2, a skipped root field is "The subscription selects no field."
    for operation, directive in [
        ("subscription", "@skip(if: true)"),
        ("subscription", "@include(if: true)"),
        ("subscription ($s: Boolean!)", "@skip(if: $s)"),
    ]:
        query = f'{operation} {{ ticks(channel: "a") {directive} {{ value }} }}'
        assert errors_of(schema.prepare(query, None, {"s": False})) == [
            {
                "message": "Anonymous Subscription must not use `@skip` or `@include` "
                "directives in the top level selection.",
                "locations": [{"line": 1, "column": len(operation) + 24}],
            }
        ]


class Range(BaseModel):
    low: int
    high: int

    @field_validator("high")
    @classmethod
    def ordered(cls, high: int, info: Any) -> int:
        if high < info.data["low"]:
            raise ValueError("high is below low")
        return high


def test_arguments_refused_by_a_model_become_graphql_errors() -> None:
    reg = SubscriptionRegistry()

    @subscription(registry=reg)
    def prices(event: Any, within: Range) -> int:
        return 0

    schema = SubscriptionSchema(reg.fields)
    errors = errors_of(schema.prepare("subscription { prices(within: {low: 5, high: 1}) }"))
    assert len(errors) == 1
    assert errors[0]["message"].startswith(
        "Invalid arguments for field 'prices': 1 validation error for Range"
    )
    assert "high is below low" in errors[0]["message"]
    assert errors[0]["locations"] == [{"line": 1, "column": 16}]


def test_valid_documents_are_cached_by_text_least_recently_used_first_out() -> None:
    schema = SubscriptionSchema(registry.fields, document_cache_size=2)
    first, second, third = (f"query Q{i} {{ _subscriptions }}" for i in range(3))
    document = schema.document(first)
    assert schema.document(first) is document
    schema.document(second)
    schema.document(first)  # first is now the most recently used
    schema.document(third)  # evicts second
    assert schema.document(first) is document
    assert list(schema._documents) == [third, first]
    assert isinstance(schema.document("{ nope }"), list)
    assert "{ nope }" not in schema._documents  # invalid documents are not kept


# --- execute --------------------------------------------------------------------------------


def test_execute_a_query(schema: SubscriptionSchema) -> None:
    prepared = prepared_ok(schema.prepare(OPERATIONS, "Names"))
    result = asyncio.run(schema.execute(prepared))
    assert result.formatted == {
        "data": {"_subscriptions": ["messagePosted", "ticks", "orderUpdated", "search"]}
    }


def test_introspection_gives_back_the_same_schema(schema: SubscriptionSchema) -> None:
    introspection = get_introspection_query(descriptions=True, specified_by_url=True)
    result = asyncio.run(schema.execute(prepared_ok(schema.prepare(introspection))))
    assert result.errors is None
    assert print_schema(build_client_schema(result.data)) == schema.print_schema()  # type: ignore[arg-type]


def test_subscriptions_are_not_executed_by_graphql_core(schema: SubscriptionSchema) -> None:
    prepared = prepared_ok(schema.prepare(OPERATIONS, "Ticks"))
    with pytest.raises(ValueError, match="subscriptions are dispatched by the manager"):
        asyncio.run(schema.execute(prepared))


def test_query_fields_resolve_python_objects_by_python_name() -> None:
    mapper_schema = SubscriptionSchema(registry.fields)
    message_type = mapper_schema.graphql_schema.type_map["Message"]
    latest = GraphQLField(
        message_type,  # type: ignore[arg-type]
        resolve=lambda *_: Message(
            id="1", room_id="r", text="hi", sent_at=datetime.datetime(2024, 1, 1)
        ),
    )
    # A new schema sharing the mapped types would need the same mapper; here the query field
    # type is reused in a schema built from the same registry (same type objects).
    query = mapper_schema.graphql_schema.query_type
    assert query is not None
    query.fields["latest"] = latest
    result = asyncio.run(
        mapper_schema.execute(prepared_ok(mapper_schema.prepare("{ latest { id roomId sentAt } }")))
    )
    assert result.formatted == {
        "data": {"latest": {"id": "1", "roomId": "r", "sentAt": "2024-01-01T00:00:00"}}
    }


# --- conversions ----------------------------------------------------------------------------

MOMENT = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
ORDER_ID = uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301")


def test_to_jsonable_keys_by_python_name_and_converts_scalars() -> None:
    order = Order(ORDER_ID, OrderStatus.PAID, [LineItem("a", 2)], datetime.date(2024, 5, 2))
    assert to_jsonable(order, Order) == {
        "id": str(ORDER_ID),
        "status": "PAID",
        "items": [{"sku": "a", "quantity": 2}],
        "delivery_date": "2024-05-02",
    }
    message = Message(id=ID("1"), room_id="r", text="hi", sent_at=MOMENT)
    assert to_jsonable(message, Message | None) == {  # by pydantic's serializer: UTC is "Z"
        "id": "1",
        "room_id": "r",
        "text": "hi",
        "sent_at": "2024-05-01T12:30:00Z",
    }
    assert to_jsonable(None, Message | None) is None


def test_to_jsonable_reads_dicts_by_python_name_and_accepts_enum_values_and_names() -> None:
    data = {"id": ORDER_ID, "status": "shipped", "items": [], "extra": "dropped"}
    assert to_jsonable(data, Order) == {"id": str(ORDER_ID), "status": "SHIPPED", "items": []}
    assert to_jsonable({"status": "PENDING"}, Order) == {"status": "PENDING"}
    assert to_jsonable({"status": "lost"}, Order) == {"status": "lost"}  # the core reports it


def test_to_jsonable_marks_union_members_with_typename() -> None:
    tick = Tick(id=ID("t"), channel="c", value=1)
    assert to_jsonable(
        [tick, {"__typename": "Tick", "id": "u", "value": 2}], list[Message | Tick]
    ) == [
        {"__typename": "Tick", "id": "t", "channel": "c", "value": 1, "ts": None},
        {"__typename": "Tick", "id": "u", "value": 2},
    ]
    with pytest.raises(TypeError, match="dict value is none of Message, Tick"):
        to_jsonable({"id": "x"}, Message | Tick)


def test_to_jsonable_of_typeddicts_keeps_declared_keys() -> None:
    assert to_jsonable({"width": 1, "height": 2, "depth": 3}, Size) == {"width": 1, "height": 2}
    assert to_jsonable([{"width": 1}], list[Size]) == [{"width": 1}]


def test_to_jsonable_without_annotation() -> None:
    assert to_jsonable(
        {"when": MOMENT, "ids": (ORDER_ID,), "color": Color.RED, "point": Point(1.0)}
    ) == {
        "when": "2024-05-01T12:30:00+00:00",
        "ids": [str(ORDER_ID)],
        "color": "RED",
        "point": {"x_value": 1.0, "y_value": 0.0},
    }
    with pytest.raises(TypeError, match=r"object value .* is not JSON-serializable"):
        to_jsonable({"x": object()})


def test_from_graphql_args_builds_instances_from_coerced_and_from_json_values() -> None:
    reg = SubscriptionRegistry()

    @subscription(registry=reg)
    def shapes(
        event: Any,
        point: Point,
        points: list[Point | None],
        size: Size | None,
        draft: Draft,
        color: Color = Color.RED,
        when: datetime.datetime | None = None,
        ref: uuid.UUID | None = None,
    ) -> int:
        return 0

    (field,) = reg.fields
    schema = SubscriptionSchema(reg.fields)
    query = """subscription {
        shapes(point: {xValue: 1, yValue: 2}, points: [{xValue: 3}, null],
               draft: {text: "t", note: null}, when: "2024-05-01T12:30:00Z",
               ref: "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    }"""
    prepared = prepared_ok(schema.prepare(query))
    expected = {
        "point": Point(1.0, 2.0),
        "points": [Point(3.0), None],
        "size": None,
        "draft": Draft(text="t"),
        "color": Color.RED,
        "when": MOMENT,
        "ref": ORDER_ID,
    }
    assert prepared.resolver_args == expected
    as_json = args_to_json(field, prepared.args)  # type: ignore[arg-type]
    assert as_json == {
        "point": {"xValue": 1.0, "yValue": 2.0},
        "points": [{"xValue": 3.0, "yValue": 0.0}, None],
        "size": None,
        "draft": {"text": "t", "priority": 0, "color": "GREEN", "note": None},
        "color": "RED",
        "when": "2024-05-01T12:30:00+00:00",
        "ref": str(ORDER_ID),
    }
    assert from_graphql_args(field, as_json) == expected  # what the Rust core hands back


def test_from_graphql_args_lets_python_fill_factories_and_not_required_keys() -> None:
    reg = SubscriptionRegistry()

    @subscription(registry=reg)
    def drafts(event: Any, draft: Draft, size: Size, where: SearchFilter) -> int:
        return 0

    (field,) = reg.fields
    args = {
        "draft": {"text": "t", "tags": None},  # null for a factory default: use the factory
        "size": {"width": 1, "height": 2},
        "where": {"text": "x"},  # `rooms` is NotRequired: left out
    }
    assert from_graphql_args(field, args) == {
        "draft": Draft(text="t", tags=[]),
        "size": {"width": 1, "height": 2},
        "where": {"text": "x"},
    }


def test_pydantic_aliases_are_used_to_construct_models() -> None:
    class Aliased(BaseModel):
        room_id: str = Field(alias="roomID")

    reg = SubscriptionRegistry()

    @subscription(registry=reg)
    def aliased(event: Any, target: Aliased) -> int:
        return 0

    (field,) = reg.fields
    assert from_graphql_args(field, {"target": {"roomId": "r"}}) == {"target": Aliased(roomID="r")}


def test_from_graphql_args_refuses_what_a_model_refuses() -> None:
    reg = SubscriptionRegistry()

    @subscription(registry=reg)
    def prices(event: Any, within: Range) -> int:
        return 0

    with pytest.raises(ValidationError):
        from_graphql_args(reg.fields[0], {"within": {"low": 2, "high": 1}})


# --- properties -----------------------------------------------------------------------------

words = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)


@given(st.lists(words, min_size=1, max_size=4))
def test_camel_case_of_snake_case_can_be_read_back(parts: list[str]) -> None:
    name = "_".join(parts)
    camel = camel_case(name)
    assert "_" not in camel
    assert re.sub(r"([A-Z])", r"_\1", camel).lower() == name
    assert camel_case(camel) == camel  # idempotent


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True))
def test_camel_case_of_any_identifier_is_a_graphql_name(name: str) -> None:
    camel = camel_case(name)
    assert re.fullmatch(r"[_A-Za-z][_0-9A-Za-z]*", camel)
    assert camel.lstrip("_") == "" or "_" not in camel.lstrip("_")
    assert len(camel) - len(camel.lstrip("_")) == len(name) - len(name.lstrip("_"))


@dataclasses.dataclass
class Window:
    start_at: datetime.datetime
    days: list[datetime.date]


round_trip_registry = SubscriptionRegistry()


@subscription(registry=round_trip_registry)
def readings(
    event: Any,
    count: int,
    names: list[str],
    color: Color | None,
    window: Window,
    sensor_id: uuid.UUID,
    ratio: float = 1.0,
) -> int:
    return 0


ROUND_TRIP_QUERY = """
subscription ($count: Int!, $names: [String!]!, $color: Color, $window: WindowInput!,
              $sensorId: UUID!, $ratio: Float) {
  readings(count: $count, names: $names, color: $color, window: $window, sensorId: $sensorId,
           ratio: $ratio)
}
"""
ROUND_TRIP_SCHEMA = SubscriptionSchema(round_trip_registry.fields)
INT32 = 2**31


@given(
    count=st.integers(min_value=-(2**40), max_value=2**40),
    names=st.lists(st.text(max_size=5), max_size=3),
    color=st.none() | st.sampled_from(Color),
    start_at=st.datetimes(timezones=st.just(datetime.timezone.utc)),
    days=st.lists(st.dates(), max_size=3),
    sensor_id=st.uuids(),
    ratio=st.none() | st.floats(allow_nan=False, allow_infinity=False),
)
def test_variables_round_trip_through_coercion_and_json(
    count: int,
    names: list[str],
    color: Color | None,
    start_at: datetime.datetime,
    days: list[datetime.date],
    sensor_id: uuid.UUID,
    ratio: float | None,
) -> None:
    """Python values sent as JSON variables come back to the resolver as the same Python
    values, through graphql-core's coercion and through the Rust core's JSON form; values a
    GraphQL type cannot hold (Int beyond 32 bits) are errors, never exceptions."""
    variables = {
        "count": count,
        "names": names,
        "color": color.name if color else None,
        "window": {"startAt": start_at.isoformat(), "days": [d.isoformat() for d in days]},
        "sensorId": str(sensor_id),
    }
    if ratio is not None:  # left out, the GraphQL default (the Python default) applies
        variables["ratio"] = ratio
    result = ROUND_TRIP_SCHEMA.prepare(ROUND_TRIP_QUERY, None, variables)
    if not -INT32 <= count < INT32:
        assert [error.message for error in result] == [  # type: ignore[union-attr]
            f"Variable '$count' has invalid value: "
            f"Int cannot represent non 32-bit signed integer value: {count}"
        ]
        return
    prepared = prepared_ok(result)
    expected = {
        "count": count,
        "names": names,
        "color": color,
        "window": Window(start_at, days),
        "sensor_id": sensor_id,
        "ratio": 1.0 if ratio is None else ratio,
    }
    assert prepared.resolver_args == expected
    field = round_trip_registry.fields[0]
    assert from_graphql_args(field, args_to_json(field, prepared.args)) == expected  # type: ignore[arg-type]
