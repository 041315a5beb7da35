"""Tests for `@subscription` (fraiseql_fastapi.decorator): what it records, the helpers of
`SubscriptionField`, the registry, and every import-time error with its message.

No `from __future__ import annotations` here: resolvers defined inside tests use local classes
in their hints, which must be real objects for `typing.get_type_hints`.
"""

import asyncio
import dataclasses
import enum
import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from fraiseql_fastapi.decorator import (
    ArgumentFilter,
    SubscriptionDefinitionError,
    SubscriptionField,
    SubscriptionRegistry,
    default_registry,
    subscription,
)
from fraiseql_fastapi.names import ID, MISSING


class Message(BaseModel):
    id: str
    room_id: str
    text: str


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


def define(**options: Any) -> Callable[[Callable[..., Any]], SubscriptionField]:
    """Decorates into a fresh registry and returns the recorded field."""

    def decorate(func: Callable[..., Any]) -> SubscriptionField:
        registry = SubscriptionRegistry()
        subscription(**options, registry=registry)(func)
        (field,) = registry.fields
        return field

    return decorate


# --- what is recorded -----------------------------------------------------------------------


def test_the_readme_resolver_is_recorded_with_everything_the_manager_needs() -> None:
    registry = SubscriptionRegistry()

    @subscription(channel="room:{room_id}", registry=registry)
    async def message_posted(event: Any, room_id: str, context: Any) -> Message | None:
        """New messages in a room."""
        return Message(**event.data)

    (field,) = registry.fields
    assert field.func is message_posted
    assert field.name == "messagePosted"
    assert field.python_name == "message_posted"
    assert field.description == "New messages in a room."
    assert field.channel_template == "room:{room_id}"
    assert field.event_types is None
    assert field.filters == ()
    assert field.permissions == ()
    assert field.roles == ()
    assert field.scope == "user"
    assert [(a.python_name, a.graphql_name, a.annotation) for a in field.arguments] == [
        ("room_id", "roomId", str)
    ]
    assert field.arguments[0].default is MISSING
    assert not field.arguments[0].has_default
    assert field.return_annotation == Message | None
    assert field.is_async
    assert field.wants_context


def test_bare_decorator_returns_the_function_and_records_it_in_the_default_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(default_registry, "_fields", {})

    @subscription
    def user_joined(event: Any) -> str:
        return str(event)

    assert user_joined("x") == "x"  # still callable, unchanged
    (field,) = default_registry.fields
    assert field.func is user_joined
    assert field.name == "userJoined"
    assert field.channel_template == "userJoined"  # default channel: the field name
    assert field.arguments == ()
    assert not field.is_async
    assert not field.wants_context


def test_options_are_recorded_normalized() -> None:
    @define(
        name="roomEvents",
        event_types="messagePosted",
        permissions=["rooms:read"],
        roles=("member", "admin"),
        scope="global",
        description="Overrides the docstring.",
    )
    def events(event: Any) -> str:
        """Not used."""
        return ""

    assert events.name == "roomEvents"
    assert events.python_name == "events"
    assert events.event_types == ("messagePosted",)
    assert events.permissions == ("rooms:read",)
    assert events.roles == ("member", "admin")
    assert events.scope == "global"
    assert events.description == "Overrides the docstring."


def test_docstring_is_cleaned() -> None:
    @define()
    def ticks(event: Any) -> int:
        """First line.

        Details, indented in the source.
        """
        return 0

    assert ticks.description == "First line.\n\nDetails, indented in the source."


def test_context_may_come_anywhere_after_event_and_defaults_are_kept() -> None:
    @define()
    def feed(event: Any, context: Any, limit: int = 10, *, tag: str | None = None) -> int:
        return 0

    assert feed.wants_context
    assert [(a.python_name, a.default) for a in feed.arguments] == [("limit", 10), ("tag", None)]
    assert all(a.has_default for a in feed.arguments)


def test_arguments_are_camel_cased() -> None:
    @define()
    def orders(event: Any, min_total_price: float, user_id: ID, type_: str) -> int:
        return 0

    assert [a.graphql_name for a in orders.arguments] == ["minTotalPrice", "userId", "type"]


# --- SubscriptionField helpers --------------------------------------------------------------


def test_channels_fill_the_template_like_an_f_string() -> None:
    @define(channel="room:{room_id}:{color}")
    def message_posted(event: Any, room_id: str, color: Color) -> str:
        return ""

    room_id, color = "42", Color.RED
    assert message_posted.channels({"room_id": room_id, "color": color}) == [
        f"room:{room_id}:{color}"
    ]


def test_channel_template_may_read_attributes_of_an_argument() -> None:
    @dataclasses.dataclass
    class Room:
        id: str

    @define(channel="room:{room.id}")
    def message_posted(event: Any, room: Room) -> str:
        return ""

    assert message_posted.channels({"room": Room("7")}) == ["room:7"]


def test_static_channel_and_channel_functions() -> None:
    @define(channel="news")
    def static(event: Any) -> str:
        return ""

    @define(channel=lambda args: [f"room:{room}" for room in args["rooms"]])
    def many(event: Any, rooms: list[str]) -> str:
        return ""

    @define(channel=lambda args: f"user:{args['user_id']}")
    def one(event: Any, user_id: str) -> str:
        return ""

    assert static.channels({}) == ["news"]
    assert many.channels({"rooms": ["a", "b"]}) == ["room:a", "room:b"]
    assert one.channels({"user_id": "u1"}) == ["user:u1"]


def test_a_channel_function_returning_something_else_is_a_type_error() -> None:
    @define(channel=lambda args: 42)
    def broken(event: Any) -> str:
        return ""

    with pytest.raises(TypeError, match=r"broken: the channel function returned 42"):
        broken.channels({})


def test_mapping_filters_become_equality_filters_on_arguments() -> None:
    @define(filters={"room_id": "room_id", "author.id": "author_id"})
    def message_posted(event: Any, room_id: str, author_id: str | None = None) -> str:
        return ""

    assert message_posted.filters == (
        ArgumentFilter("room_id", "eq", argument="room_id"),
        ArgumentFilter("author.id", "eq", argument="author_id"),
    )
    assert message_posted.core_filters() == [
        {"field": "room_id", "op": "eq", "variable": "roomId"},
        {"field": "author.id", "op": "eq", "variable": "authorId"},
    ]


def test_argument_filters_with_arguments_and_constants() -> None:
    @define(
        filters=[
            ArgumentFilter(field="price", op="gte", argument="min_price"),
            ArgumentFilter(field="color", op="ne", value=Color.GREEN),
            ArgumentFilter(field="tags", op="contains", value="sale"),
            ArgumentFilter(field="deleted_at", op="eq", value=None),
        ]
    )
    def price_changed(event: Any, min_price: float | None = None) -> float:
        return 0.0

    assert price_changed.core_filters() == [
        {"field": "price", "op": "gte", "variable": "minPrice"},
        {"field": "color", "op": "ne", "value": "GREEN"},  # enums are their GraphQL names
        {"field": "tags", "op": "contains", "value": "sale"},
        {"field": "deleted_at", "op": "eq", "value": None},  # a null constant, not "no value"
    ]


def test_to_core_takes_any_name_mapping_function() -> None:
    item = ArgumentFilter("room_id", "in", argument="rooms")
    assert item.to_core(str.upper) == {"field": "room_id", "op": "in", "variable": "ROOMS"}


def test_graphql_name_of() -> None:
    @define()
    def orders(event: Any, min_total: int) -> int:
        return 0

    assert orders.graphql_name_of("min_total") == "minTotal"
    with pytest.raises(KeyError):
        orders.graphql_name_of("minTotal")


def test_call_passes_arguments_by_keyword_and_context_only_when_wanted() -> None:
    @define()
    def with_context(event: Any, room_id: str, context: Any) -> str:
        return f"{event}/{room_id}/{context}"

    @define()
    def without_context(event: Any, room_id: str) -> str:
        return f"{event}/{room_id}"

    assert with_context.call("e", {"room_id": "r"}, "ctx") == "e/r/ctx"
    assert without_context.call("e", {"room_id": "r"}, "ctx") == "e/r"


def test_call_of_an_async_resolver_returns_an_awaitable() -> None:
    @define()
    async def ticks(event: Any, step: int) -> int:
        return int(event) + step

    assert ticks.is_async
    assert asyncio.run(ticks.call(1, {"step": 2}, None)) == 3


def test_an_object_with_an_async_call_is_async() -> None:
    class Resolver:
        __name__ = "ticks"

        async def __call__(self, event: Any) -> int:
            return 1

    field = define()(Resolver())
    assert field.name == "ticks"
    assert field.is_async
    assert asyncio.run(field.call(None, {}, None)) == 1


# --- the registry ---------------------------------------------------------------------------


def test_a_second_field_with_the_same_name_is_an_error() -> None:
    registry = SubscriptionRegistry()

    @subscription(registry=registry)
    def message_posted(event: Any) -> str:
        return ""

    with pytest.raises(SubscriptionDefinitionError) as error:

        @subscription(name="messagePosted", registry=registry)
        def other(event: Any) -> str:
            return ""

    assert str(error.value) == (
        "other: a subscription named 'messagePosted' is already defined by "
        f"{__name__}.test_a_second_field_with_the_same_name_is_an_error.<locals>.message_posted"
    )
    assert [field.func for field in registry.fields] == [message_posted]


def test_the_same_function_defined_again_replaces_the_first() -> None:
    registry = SubscriptionRegistry()
    functions = []
    for _ in range(2):  # as when a module is executed twice

        @subscription(registry=registry)
        def message_posted(event: Any) -> str:
            return ""

        functions.append(message_posted)

    assert [field.func for field in registry.fields] == [functions[1]]


def test_registries_keep_declaration_order() -> None:
    registry = SubscriptionRegistry()
    for name in ("b", "a", "c"):

        def resolver(event: Any) -> str:
            return ""

        subscription(name=name, registry=registry)(resolver)
    assert [field.name for field in registry.fields] == ["b", "a", "c"]


# --- import-time errors ---------------------------------------------------------------------


def no_hint(event: Any, room_id) -> str:  # type: ignore[no-untyped-def]
    return ""


def unsupported_hint(event: Any, tags: set[str]) -> str:
    return ""


def star_args(event: Any, *rooms: str) -> str:
    return ""


def star_kwargs(event: Any, **options: str) -> str:
    return ""


def no_event(room_id: str) -> str:
    return ""


def event_not_first(room_id: str, event: Any) -> str:
    return ""


def no_parameters() -> str:
    return ""


def positional_only(event: Any, room_id: str, /) -> str:
    return ""


def no_return(event: Any):  # type: ignore[no-untyped-def]
    return ""


def returns_none(event: Any) -> None:
    return None


def returns_dict(event: Any) -> dict[str, int]:
    return {}


def returns_any(event: Any) -> Any:
    return None


def generator(event: Any) -> Any:
    yield event


async def async_generator(event: Any) -> Any:
    yield event


def clashing_names(event: Any, room_id: str, roomId: str) -> str:
    return ""


def undefined_name(event: Any, room: "Undefined") -> str:  # type: ignore[name-defined]  # noqa: F821
    return ""


def bare_list(event: Any, rooms: list) -> str:  # type: ignore[type-arg]
    return ""


def union_argument(event: Any, target: Message | Color) -> str:
    return ""


class WithSet(BaseModel):
    tags: set[str]


class Outer(BaseModel):
    inner: WithSet


def nested_unsupported(event: Any) -> Outer:
    return Outer(inner=WithSet(tags=set()))


def nested_unsupported_input(event: Any, where: Outer) -> str:
    return ""


def bad_default(event: Any, color: Color = "purple") -> str:  # type: ignore[assignment]
    return ""


class Chain(BaseModel):
    label: str
    next: "Chain"


def endless_input(event: Any, chain: Chain) -> str:
    return ""


def ok(event: Any, room_id: str) -> str:
    return ""


ERRORS: list[tuple[Callable[..., Any], dict[str, Any], str]] = [
    (no_hint, {}, "no_hint: parameter 'room_id' has no type hint"),
    (
        unsupported_hint,
        {},
        "unsupported_hint: parameter 'tags': unsupported type hint set[str]; use str, int, "
        "float, bool, ID, UUID, datetime, date, time, Decimal, JSON, an Enum, a pydantic model, "
        "a dataclass or a TypedDict, or Optional[...] / list[...] of these",
    ),
    (
        star_args,
        {},
        "star_args: *rooms is not supported; declare each GraphQL argument as a parameter",
    ),
    (
        star_kwargs,
        {},
        "star_kwargs: **options is not supported; declare each GraphQL argument as a parameter",
    ),
    (no_event, {}, "no_event: the first parameter must be 'event' (the event being dispatched)"),
    (
        event_not_first,
        {},
        "event_not_first: the first parameter must be 'event' (the event being dispatched)",
    ),
    (
        no_parameters,
        {},
        "no_parameters: the first parameter must be 'event' (the event being dispatched)",
    ),
    (
        positional_only,
        {},
        "positional_only: parameter 'room_id' is positional-only; arguments are passed by keyword",
    ),
    (
        no_return,
        {},
        "no_return: the return type hint is missing; it gives the field's GraphQL type "
        "(e.g. -> Message | None)",
    ),
    (
        returns_none,
        {},
        "returns_none: the return type hint is None; it must name the value sent to "
        "subscribers (a resolver may still return None to send nothing)",
    ),
    (returns_dict, {}, "returns_dict: return type: unsupported type hint dict[str, int]; use"),
    (returns_any, {}, "returns_any: return type: unsupported type hint Any; use"),
    (
        generator,
        {},
        "generator: resolvers are called once per event and return one value; generators are "
        "not supported (use def or async def with return, or an async generator",
    ),
    (
        async_generator,
        {},
        "async_generator: an async generator's return type hint must be AsyncIterator[T]",
    ),
    (
        clashing_names,
        {},
        "clashing_names: parameters 'room_id' and 'roomId' both become 'roomId' in GraphQL",
    ),
    (undefined_name, {}, "undefined_name: cannot resolve the type hints: name 'Undefined'"),
    (
        bare_list,
        {},
        "bare_list: parameter 'rooms': list needs one item type, as in list[str] or "
        "tuple[str, ...]",
    ),
    (
        union_argument,
        {},
        "union_argument: parameter 'target': a union (Message | Color) cannot be used as an input",
    ),
    (
        nested_unsupported,
        {},
        "nested_unsupported: return type: Outer.inner: WithSet.tags: unsupported type hint "
        "set[str]",
    ),
    (
        nested_unsupported_input,
        {},
        "nested_unsupported_input: parameter 'where': Outer.inner: WithSet.tags: unsupported "
        "type hint set[str]",
    ),
    (
        bad_default,
        {},
        "bad_default: parameter 'color': default value 'purple' cannot be represented as Color!",
    ),
    (
        endless_input,
        {},
        "endless_input: invalid schema: Input Object ChainInput cannot be provided a finite "
        "value because it references itself through fields: ChainInput.next.",
    ),
    (
        ok,
        {"channel": "room:{room}"},
        "ok: channel template 'room:{room}' names unknown argument 'room' (arguments: room_id)",
    ),
    (
        ok,
        {"channel": "room:{}"},
        "ok: channel template 'room:{}' has a positional field; name an argument, as in "
        "'room:{room_id}'",
    ),
    (ok, {"channel": "room:{room_id"}, "ok: channel template 'room:{room_id' is invalid: "),
    (ok, {"channel": ""}, "ok: channel must be a non-empty string or a function, got ''"),
    (
        ok,
        {"scope": "team"},
        "ok: unknown scope 'team'; use one of global, tenant, user, subscription",
    ),
    (
        ok,
        {"filters": {"room_id": "room"}},
        "ok: filter on 'room_id' names unknown argument 'room' (arguments: room_id)",
    ),
    (
        ok,
        {"filters": [ArgumentFilter("price", "gt", argument="min_price")]},
        "ok: filter on 'price' names unknown argument 'min_price' (arguments: room_id)",
    ),
    (ok, {"filters": ["room_id"]}, "ok: filters: 'room_id' is not an ArgumentFilter"),
    (
        ok,
        {"filters": "room_id"},
        "ok: filters must be a mapping or a sequence of ArgumentFilter, got 'room_id'",
    ),
    (
        ok,
        {"event_types": []},
        "ok: event_types must be a non-empty string or a list of them, got []",
    ),
    (ok, {"roles": [1]}, "ok: roles must be a non-empty string or a list of them, got [1]"),
    (
        ok,
        {"name": "message-posted"},
        "ok: field name 'message-posted' is not a valid GraphQL name (letters, digits and _, "
        "not starting with a digit)",
    ),
    (
        ok,
        {"name": "__posted"},
        "ok: field name '__posted' starts with '__', which GraphQL reserves for introspection",
    ),
]


@pytest.mark.parametrize(
    ("func", "options", "message"),
    ERRORS,
    ids=[f"{func.__name__}-{'-'.join(options) or 'plain'}" for func, options, _ in ERRORS],
)
def test_misdeclared_resolvers_fail_with_a_message_naming_function_and_problem(
    func: Callable[..., Any], options: dict[str, Any], message: str
) -> None:
    registry = SubscriptionRegistry()
    with pytest.raises(SubscriptionDefinitionError) as error:
        subscription(**options, registry=registry)(func)
    assert str(error.value).startswith(message)
    assert registry.fields == ()  # nothing half-registered


def test_definition_errors_are_type_errors() -> None:
    assert issubclass(SubscriptionDefinitionError, TypeError)


def test_two_output_classes_with_one_name_are_an_error() -> None:
    def make() -> type:
        class Message(BaseModel):
            body: str

        return Message

    local_message = make()

    class Both(BaseModel):
        first: Message
        second: local_message  # type: ignore[valid-type]

    with pytest.raises(SubscriptionDefinitionError) as error:

        @define()
        def both(event: Any) -> Both:
            return Both.model_construct()

    local = f"{__name__}.test_two_output_classes_with_one_name_are_an_error.<locals>.make"
    assert str(error.value) == (
        "both: return type: Both.second: two different types are named 'Message': "
        f"{__name__}.Message and {local}.<locals>.Message"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"field": "price", "op": "between", "argument": "x"}, "unknown op 'between'"),
        ({"field": "price", "op": "eq"}, "give either argument= or value=, not both or neither"),
        (
            {"field": "price", "op": "eq", "argument": "x", "value": 1},
            "give either argument= or value=, not both or neither",
        ),
        ({"field": "", "argument": "x"}, "filter field must be a non-empty string"),
        ({"field": "at", "value": object()}, "value is not JSON-serializable"),
    ],
)
def test_argument_filter_checks_itself(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SubscriptionDefinitionError, match=re.escape(message)):
        ArgumentFilter(**options)


def test_a_non_function_is_refused() -> None:
    with pytest.raises(SubscriptionDefinitionError, match="@subscription needs a function"):
        subscription(registry=SubscriptionRegistry())(42)  # type: ignore[type-var]
