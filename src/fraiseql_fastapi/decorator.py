"""`@subscription`: a resolver function becomes a GraphQL subscription field.

```python
@subscription(channel="room:{room_id}")
async def message_posted(event, room_id: str, context) -> Message | None:
    \"\"\"New messages in a room.\"\"\"
    return Message(**event.data)
```
declares `messagePosted(roomId: String!): Message` (the docstring is its description). The
resolver's first parameter is `event` (the event being dispatched); `context` (the connection's
security context) is optional and may come anywhere after it; every other parameter is a
GraphQL argument and needs a type hint (see `fraiseql_fastapi.type_mapping` for the supported
hints). The return hint is the field's type; `X | None` makes it nullable. Independently of that,
a resolver that returns None sends nothing for that event.

Everything is checked when the decorator runs, so a misdeclared resolver fails at import time
with a `SubscriptionDefinitionError` naming the function and the problem.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import math
import operator
import re
import string
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, overload

from fraiseql_core_rs import PyComplete

from .errors import SubscriptionDefinitionError
from .field import (
    SCOPES,
    ArgumentFilter,
    ArgumentSpec,
    ChannelTemplate,
    FilterOp,
    Scope,
    SubscriptionField,
    SubscriptionRegistry,
    default_registry,
)
from .names import MISSING, camel_case, check_graphql_name, error_context
from .schema import SubscriptionSchema

__all__ = [
    "ArgumentFilter",
    "ArgumentSpec",
    "ChannelTemplate",
    "FilterOp",
    "Scope",
    "SubscriptionDefinitionError",
    "SubscriptionField",
    "SubscriptionRegistry",
    "build_field",
    "default_registry",
    "subscription",
]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def subscription(func: F, /) -> F: ...


@overload
def subscription(
    func: None = None,
    /,
    *,
    name: str | None = None,
    channel: ChannelTemplate | None = None,
    event_types: str | Sequence[str] | None = None,
    filters: Mapping[str, str] | Sequence[ArgumentFilter] | None = None,
    permissions: str | Sequence[str] | None = None,
    roles: str | Sequence[str] | None = None,
    scope: Scope = "user",
    description: str | None = None,
    conflate: bool = False,
    max_rate: float | None = None,
    registry: SubscriptionRegistry | None = None,
) -> Callable[[F], F]: ...


def subscription(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    channel: ChannelTemplate | None = None,
    event_types: str | Sequence[str] | None = None,
    filters: Mapping[str, str] | Sequence[ArgumentFilter] | None = None,
    permissions: str | Sequence[str] | None = None,
    roles: str | Sequence[str] | None = None,
    scope: Scope = "user",
    description: str | None = None,
    conflate: bool = False,
    max_rate: float | None = None,
    registry: SubscriptionRegistry | None = None,
) -> F | Callable[[F], F]:
    """Declares a GraphQL subscription field; use bare (`@subscription`) or with options.

    - `name`: the GraphQL field name (default: the function name, camelCased).
    - `channel`: the channel(s) to listen on (default: the field name); a template over the
      arguments (`"room:{room_id}"`) or a function of the arguments.
    - `event_types`: accepted event types (default: all).
    - `filters`: conditions on the event data evaluated in Rust: `{"room_id": "room_id"}`
      (event field == argument) or a sequence of `ArgumentFilter`.
    - `permissions`, `roles`: what the connection's context must grant to subscribe.
    - `scope`: who may share one resolver call per event: "global", "tenant", "user"
      (default) or "subscription".
    - `description`: the field description (default: the docstring).
    - `conflate`: keep only the latest value for a client that falls behind (ticker-like
      data): an event for a subscription whose previous `next` is still queued replaces it,
      so the client gets the latest value and never lags (`EVENTS_LAGGED`).
    - `max_rate`: at most this many events a second per subscription (a burst of one second's
      worth); the others wait for their slot, in order (with `conflate`, only the latest
      waits). Holding more than the connection's queue bound lags it (`EVENTS_LAGGED`).
    - `registry`: where to record the field (default: `default_registry`).

    Returns the function unchanged and records a `SubscriptionField`; raises
    `SubscriptionDefinitionError` for a misdeclared resolver.
    """

    def decorate(function: F) -> F:
        field = build_field(
            function,
            name=name,
            channel=channel,
            event_types=event_types,
            filters=filters,
            permissions=permissions,
            roles=roles,
            scope=scope,
            description=description,
            conflate=conflate,
            max_rate=max_rate,
        )
        (default_registry if registry is None else registry).add(field)
        return function

    return decorate if func is None else decorate(func)


def build_field(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    channel: ChannelTemplate | None = None,
    event_types: str | Sequence[str] | None = None,
    filters: Mapping[str, str] | Sequence[ArgumentFilter] | None = None,
    permissions: str | Sequence[str] | None = None,
    roles: str | Sequence[str] | None = None,
    scope: Scope = "user",
    description: str | None = None,
    conflate: bool = False,
    max_rate: float | None = None,
) -> SubscriptionField:
    """The `SubscriptionField` of a resolver (what `@subscription` records), checked: its
    types are mapped to GraphQL once here so that errors surface at import time."""
    python_name = getattr(func, "__name__", None)
    if not callable(func) or not isinstance(python_name, str):
        raise SubscriptionDefinitionError(f"@subscription needs a function, got {func!r}")
    with error_context(python_name):
        hints = _type_hints(func)
        is_stream = inspect.isasyncgenfunction(func)
        arguments, wants_context = _arguments(func, hints, takes_event=not is_stream)
        field = SubscriptionField(
            func=func,
            name=check_graphql_name(name or camel_case(python_name), "field name"),
            python_name=python_name,
            description=description or _docstring(func),
            channel_template=_channel(channel, name or camel_case(python_name), arguments),
            event_types=None if event_types is None else _strings(event_types, "event_types"),
            filters=_filters(filters, arguments),
            permissions=_strings(permissions or (), "permissions", allow_empty=True),
            roles=_strings(roles or (), "roles", allow_empty=True),
            scope=_scope(scope),
            arguments=arguments,
            return_annotation=_return_annotation(hints, is_stream),
            is_async=is_stream or _is_async(func),
            is_stream=is_stream,
            wants_context=wants_context,
            conflate=bool(conflate),
            max_rate=_max_rate(max_rate),
        )
    _check_types(field)
    return field


def _max_rate(value: float | None) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise SubscriptionDefinitionError(
            f"max_rate must be a positive number of events per second, got {value!r}"
        )
    return float(value)


def _check_types(field: SubscriptionField) -> None:
    # Building a schema of this one field maps every type it uses (errors are prefixed with
    # the function name there) and runs graphql-core's schema validation.
    SubscriptionSchema([field])


def _docstring(func: Callable[..., Any]) -> str | None:
    doc = getattr(func, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    source: Any = func
    while isinstance(source, functools.partial):
        source = source.func
    if not (inspect.isfunction(source) or inspect.ismethod(source)):
        source = type(source).__call__  # a callable object: the hints of its __call__
    try:
        return typing.get_type_hints(source, include_extras=True)
    except Exception as error:  # NameError for an undefined name, TypeError for bad hints
        raise SubscriptionDefinitionError(f"cannot resolve the type hints: {error}") from None


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.isgeneratorfunction(func):
        raise SubscriptionDefinitionError(
            "resolvers are called once per event and return one value; generators are not "
            "supported (use def or async def with return, or an async generator for a stream "
            "of its own per subscription)"
        )
    # An object with an `async def __call__` is async too.
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 -- the method itself, not callable()
    )


def _arguments(
    func: Callable[..., Any], hints: Mapping[str, Any], *, takes_event: bool = True
) -> tuple[tuple[ArgumentSpec, ...], bool]:
    """The GraphQL arguments of a resolver, and whether it takes `context`. A resolver's first
    parameter is `event`; an async generator (a stream per subscription) has none."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as error:
        raise SubscriptionDefinitionError(f"cannot read the signature: {error}") from None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if takes_event:
        if not parameters or parameters[0].name != "event" or parameters[0].kind not in positional:
            raise SubscriptionDefinitionError(
                "the first parameter must be 'event' (the event being dispatched)"
            )
        parameters = parameters[1:]
    arguments = []
    wants_context = False
    for parameter in parameters:
        _check_parameter_kind(parameter)
        if parameter.name == "context":
            wants_context = True
        else:
            arguments.append(_argument(parameter, hints))
    _check_unique_graphql_names(arguments)
    return tuple(arguments), wants_context


def _check_parameter_kind(parameter: inspect.Parameter) -> None:
    if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
        raise SubscriptionDefinitionError(
            f"*{parameter.name} is not supported; declare each GraphQL argument as a parameter"
        )
    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
        raise SubscriptionDefinitionError(
            f"**{parameter.name} is not supported; declare each GraphQL argument as a parameter"
        )
    if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
        raise SubscriptionDefinitionError(
            f"parameter {parameter.name!r} is positional-only; arguments are passed by keyword"
        )


def _argument(parameter: inspect.Parameter, hints: Mapping[str, Any]) -> ArgumentSpec:
    if parameter.name not in hints:
        raise SubscriptionDefinitionError(f"parameter {parameter.name!r} has no type hint")
    graphql_name = camel_case(parameter.name)
    check_graphql_name(graphql_name, f"parameter {parameter.name!r}: argument name")
    default = MISSING if parameter.default is inspect.Parameter.empty else parameter.default
    return ArgumentSpec(parameter.name, graphql_name, hints[parameter.name], default=default)


def _check_unique_graphql_names(arguments: Sequence[ArgumentSpec]) -> None:
    seen: dict[str, str] = {}
    for spec in arguments:
        if spec.graphql_name in seen:
            raise SubscriptionDefinitionError(
                f"parameters {seen[spec.graphql_name]!r} and {spec.python_name!r} both become "
                f"{spec.graphql_name!r} in GraphQL"
            )
        seen[spec.graphql_name] = spec.python_name


def _return_annotation(hints: Mapping[str, Any], is_stream: bool = False) -> Any:
    if "return" not in hints:
        raise SubscriptionDefinitionError(
            "the return type hint is missing; it gives the field's GraphQL type "
            "(e.g. -> Message | None)"
        )
    hint = _without_complete(hints["return"])
    if is_stream:
        if typing.get_origin(hint) not in _STREAM_HINTS or not typing.get_args(hint):
            raise SubscriptionDefinitionError(
                "an async generator's return type hint must be AsyncIterator[T] (or "
                "AsyncGenerator[T, None]); T is the field's type"
            )
        hint = typing.get_args(hint)[0]
    if hint is type(None):
        raise SubscriptionDefinitionError(
            "the return type hint is None; it must name the value sent to subscribers "
            "(a resolver may still return None to send nothing)"
        )
    return hint


#: The return hints of an async generator subscription: the item type is the field's.
_STREAM_HINTS: Final = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncGenerator,
    collections.abc.AsyncIterable,
)


def _without_complete(hint: Any) -> Any:
    """`Message | Complete` is `Message`: returning `Complete(last)` ends the subscription,
    and the field's type is what is sent."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint
    members = [member for member in typing.get_args(hint) if member is not PyComplete]
    if len(members) == len(typing.get_args(hint)):
        return hint
    if not members:
        raise SubscriptionDefinitionError(
            "the return type hint is only Complete; name the value sent to subscribers too "
            "(e.g. -> Message | Complete)"
        )
    return functools.reduce(operator.or_, members)


def _channel(
    channel: ChannelTemplate | None, field_name: str, arguments: Sequence[ArgumentSpec]
) -> ChannelTemplate:
    if channel is None:
        return field_name
    if callable(channel):
        return channel
    if not isinstance(channel, str) or not channel:
        raise SubscriptionDefinitionError(
            f"channel must be a non-empty string or a function, got {channel!r}"
        )
    known = [spec.python_name for spec in arguments]
    for argument in _template_arguments(channel):
        if argument not in known:
            raise SubscriptionDefinitionError(
                f"channel template {channel!r} names unknown argument {argument!r} "
                f"(arguments: {', '.join(known) or 'none'})"
            )
    return channel


def _template_arguments(template: str) -> list[str]:
    """The argument names a `str.format` template uses (`{room.id}` uses `room`)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        raise SubscriptionDefinitionError(
            f"channel template {template!r} is invalid: {error}"
        ) from None
    names = []
    for _, field_name, _, _ in parts:
        if field_name is None:
            continue
        root = re.match(r"[^.\[]*", field_name)
        if root is None or not root.group() or root.group().isdigit():
            raise SubscriptionDefinitionError(
                f"channel template {template!r} has a positional field; name an argument, "
                "as in 'room:{room_id}'"
            )
        names.append(root.group())
    return names


def _filters(
    filters: Mapping[str, str] | Sequence[ArgumentFilter] | None,
    arguments: Sequence[ArgumentSpec],
) -> tuple[ArgumentFilter, ...]:
    if filters is None:
        return ()
    if isinstance(filters, Mapping):
        items = tuple(ArgumentFilter(field, "eq", argument=arg) for field, arg in filters.items())
    elif isinstance(filters, Sequence) and not isinstance(filters, str):
        items = tuple(filters)
    else:
        raise SubscriptionDefinitionError(
            f"filters must be a mapping or a sequence of ArgumentFilter, got {filters!r}"
        )
    known = [spec.python_name for spec in arguments]
    for item in items:
        if not isinstance(item, ArgumentFilter):
            raise SubscriptionDefinitionError(f"filters: {item!r} is not an ArgumentFilter")
        if item.argument is not None and item.argument not in known:
            raise SubscriptionDefinitionError(
                f"filter on {item.field!r} names unknown argument {item.argument!r} "
                f"(arguments: {', '.join(known) or 'none'})"
            )
    return items


def _scope(scope: Scope) -> Scope:
    if scope not in SCOPES:
        raise SubscriptionDefinitionError(
            f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}"
        )
    return scope


def _strings(value: str | Sequence[str], what: str, allow_empty: bool = False) -> tuple[str, ...]:
    """A tuple of non-empty strings (a single string is one item)."""
    items = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(item, str) and item for item in items) or not (items or allow_empty):
        raise SubscriptionDefinitionError(
            f"{what} must be a non-empty string or a list of them, got {value!r}"
        )
    return items
