"""The field model: what `@subscription` records about a resolver (`SubscriptionField`), its
argument filters (`ArgumentFilter`), and the registry the fields are recorded in. The schema,
the manager and the connections read it; nothing here builds GraphQL or touches the core.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Final, Literal

from .conversion import to_jsonable
from .errors import SubscriptionDefinitionError
from .hints import FieldSpec
from .names import MISSING

__all__ = [
    "FILTER_OPS",
    "SCOPES",
    "ArgumentFilter",
    "ArgumentSpec",
    "ChannelTemplate",
    "FilterOp",
    "Scope",
    "SubscriptionField",
    "SubscriptionRegistry",
    "default_registry",
]

#: Who may share one resolver call for an event: everyone, a tenant, a user, or nobody.
Scope = Literal["global", "tenant", "user", "subscription"]
#: Comparisons the Rust core evaluates for argument filters.
FilterOp = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains"]
#: A channel: a `str.format` template over the resolver's arguments (`"room:{room_id}"`), or a
#: function of the arguments (by Python name) returning one channel or several.
ChannelTemplate = str | Callable[[Mapping[str, Any]], str | Sequence[str]]

SCOPES: Final[tuple[Scope, ...]] = typing.get_args(Scope)
FILTER_OPS: Final[tuple[FilterOp, ...]] = typing.get_args(FilterOp)

#: A resolver argument: its Python and GraphQL names, type hint and default.
ArgumentSpec = FieldSpec


@dataclasses.dataclass(frozen=True)
class ArgumentFilter:
    """A condition on the event data, evaluated in Rust before the resolver runs.

    `field` is a (dotted) path in the event data; it is compared with `op` to the resolver's
    argument `argument` (by Python name) or to the constant `value`. An argument that is
    null or left out disables its filter.

    `ArgumentFilter("price", "gte", argument="min_price")` keeps events whose
    `data["price"] >= min_price`.
    """

    field: str
    op: FilterOp = "eq"
    argument: str | None = None
    value: Any = MISSING

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise SubscriptionDefinitionError(f"filter field must be a non-empty string: {self}")
        if self.op not in FILTER_OPS:
            raise SubscriptionDefinitionError(
                f"filter on {self.field!r}: unknown op {self.op!r}; use one of "
                + ", ".join(FILTER_OPS)
            )
        if (self.argument is None) == (self.value is MISSING):
            raise SubscriptionDefinitionError(
                f"filter on {self.field!r}: give either argument= or value=, not both or neither"
            )
        if self.value is not MISSING:
            try:
                to_jsonable(self.value)
            except TypeError as error:
                raise SubscriptionDefinitionError(
                    f"filter on {self.field!r}: value is not JSON-serializable: {error}"
                ) from None

    def to_core(self, graphql_arg_name_of: Callable[[str], str]) -> dict[str, Any]:
        """The filter as the Rust core takes it: `{"field", "op", "variable"}` (the argument's
        GraphQL name) or `{"field", "op", "value"}` (the constant, as JSON)."""
        if self.argument is not None:
            return {
                "field": self.field,
                "op": self.op,
                "variable": graphql_arg_name_of(self.argument),
            }
        return {"field": self.field, "op": self.op, "value": to_jsonable(self.value)}


@dataclasses.dataclass(frozen=True, eq=False)
class SubscriptionField:
    """A subscription field declared with `@subscription`: everything the schema and the
    manager need to know about the resolver. Compared by identity."""

    func: Callable[..., Any]
    #: The GraphQL field name.
    name: str
    python_name: str
    description: str | None
    channel_template: ChannelTemplate
    event_types: tuple[str, ...] | None
    filters: tuple[ArgumentFilter, ...]
    permissions: tuple[str, ...]
    roles: tuple[str, ...]
    scope: Scope
    arguments: tuple[ArgumentSpec, ...]
    return_annotation: Any
    is_async: bool
    wants_context: bool
    #: An async generator: each subscription runs its own stream of values instead of
    #: listening to a channel (see `open_stream`).
    is_stream: bool = False
    #: Only the latest value is kept queued for a client that falls behind.
    conflate: bool = False
    #: At most this many events a second per subscription; the others wait for their slot.
    max_rate: float | None = None

    def channels(self, args: Mapping[str, Any]) -> list[str]:
        """The channels a subscription with these arguments listens on. `args` are the
        resolver's keyword arguments (Python names), as `from_graphql_args` returns them; a
        template is filled like an f-string would be, so a publisher writing
        `f"room:{room_id}"` with the same value names the same channel."""
        if isinstance(self.channel_template, str):
            return [self.channel_template.format_map(args)]
        result = self.channel_template(dict(args))
        if isinstance(result, str):
            return [result]
        if isinstance(result, Sequence) and all(isinstance(item, str) for item in result):
            return list(result)
        raise TypeError(
            f"{self.python_name}: the channel function returned {result!r}; "
            "expected a str or a list of str"
        )

    def graphql_name_of(self, python_name: str) -> str:
        """The GraphQL name of an argument, given its Python name (KeyError if unknown)."""
        for spec in self.arguments:
            if spec.python_name == python_name:
                return spec.graphql_name
        raise KeyError(python_name)

    def core_filters(self) -> list[dict[str, Any]]:
        """The argument filters as the Rust core's `register_subscription(filters=...)`."""
        return [item.to_core(self.graphql_name_of) for item in self.filters]

    def open_stream(self, args: Mapping[str, Any], context: Any) -> AsyncIterator[Any]:
        """Starts the async generator of a stream subscription with its keyword arguments
        (Python names) and, if it takes one, the context."""
        if self.wants_context:
            stream: AsyncIterator[Any] = self.func(**args, context=context)
        else:
            stream = self.func(**args)
        return stream

    def call(self, event: Any, args: Mapping[str, Any], context: Any) -> Any:
        """Calls the resolver with the event, its keyword arguments (Python names) and, if it
        takes one, the context. Returns what it returns (an awaitable when `is_async`)."""
        if self.wants_context:
            return self.func(event, **args, context=context)
        return self.func(event, **args)


class SubscriptionRegistry:
    """The subscription fields declared so far, by GraphQL name, in declaration order."""

    def __init__(self) -> None:
        self._fields: dict[str, SubscriptionField] = {}

    @property
    def fields(self) -> tuple[SubscriptionField, ...]:
        """The fields, in declaration order."""
        return tuple(self._fields.values())

    def add(self, field: SubscriptionField) -> None:
        """Adds a field. A second field with the same GraphQL name is an error, unless it is
        the same function defined again (a module executed twice), which replaces it."""
        existing = self._fields.get(field.name)
        if existing is not None and _qualified_name(existing.func) != _qualified_name(field.func):
            raise SubscriptionDefinitionError(
                f"{field.python_name}: a subscription named {field.name!r} is already defined "
                f"by {_qualified_name(existing.func)}"
            )
        self._fields[field.name] = field


#: Where `@subscription` records fields unless given `registry=`.
default_registry: Final = SubscriptionRegistry()


def _qualified_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', repr(func))}"
