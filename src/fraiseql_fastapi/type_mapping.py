"""Python type hints as graphql-core types: `TypeMapper` maps each hint to one GraphQL type per
class and direction (output, or input named `<Name>Input`), with the resolvers of object fields
and unions.

Supported hints, for arguments and results alike: `str`, `int`, `float`, `bool`, `ID`,
`uuid.UUID` (scalar `UUID`), `datetime.datetime` (`DateTime`, ISO 8601), `datetime.date`
(`Date`), `datetime.time` (`Time`), `decimal.Decimal` (`Decimal`, a string of its digits),
`JSON` (`JSON`, any JSON value), `enum.Enum` subclasses, pydantic models, dataclasses and
TypedDicts (object types; as arguments, input types named `<Name>Input`), `Optional[X]` /
`X | None`, `list[X]` / `Sequence[X]` / `tuple[X, ...]`, and, for results only, unions of
models or dataclasses (`A | B`, named `AOrB`). `Annotated[X, ...]` is read as `X`; any other
`NewType` as its base.
A pydantic field with a serialization alias is named by it as an output (results are
serialized by alias, as FastAPI does); inputs keep the camelCased Python names.

Nullability follows the hint: `X` is `X!`, `X | None` is `X`. A parameter or field that
defaults to None is nullable too.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLString,
    GraphQLUnionType,
    Undefined,
    ast_from_value,
)

from .conversion import to_graphql_input
from .errors import SubscriptionDefinitionError
from .hints import (
    JSON,
    FieldSpec,
    class_description,
    is_enum_class,
    is_object_class,
    is_pydantic_model,
    list_item,
    object_fields,
    split_optional,
)
from .names import ID, MISSING, check_graphql_name, error_context, hint_name
from .scalars import (
    GraphQLDate,
    GraphQLDateTime,
    GraphQLDecimal,
    GraphQLJSON,
    GraphQLTime,
    GraphQLUUID,
    PythonEnumType,
)

__all__ = ["TypeMapper", "union_name"]

SUPPORTED_HINTS: Final = (
    "str, int, float, bool, ID, UUID, datetime, date, time, Decimal, JSON, an Enum, a pydantic "
    "model, a dataclass or a TypedDict, or Optional[...] / list[...] of these"
)

_SCALARS: Final[Mapping[Any, GraphQLScalarType]] = {
    str: GraphQLString,
    int: GraphQLInt,
    float: GraphQLFloat,
    bool: GraphQLBoolean,
    ID: GraphQLID,
    uuid.UUID: GraphQLUUID,
    datetime.datetime: GraphQLDateTime,
    datetime.date: GraphQLDate,
    datetime.time: GraphQLTime,
    decimal.Decimal: GraphQLDecimal,
    JSON: GraphQLJSON,
}


def _scalar(hint: Any) -> GraphQLScalarType | None:
    try:
        return _SCALARS.get(hint)
    except TypeError:  # unhashable hint
        return None


class TypeMapper:
    """Maps type hints to graphql-core types, one GraphQL type per Python class and direction.

    A schema uses one mapper, so every class maps to the same GraphQL type object throughout
    (self-referencing and mutually recursive classes work: fields are resolved through thunks
    after the type is cached). Two different Python classes with the same GraphQL name are an
    error.
    """

    def __init__(self, reserved_names: Sequence[str] = ()) -> None:
        self._outputs: dict[Any, GraphQLNamedType] = {}
        self._inputs: dict[Any, GraphQLNamedType] = {}
        self._names: dict[str, Any] = dict.fromkeys(reserved_names, "the schema")

    def owner(self, name: str) -> str:
        """What a GraphQL type name was mapped from (e.g. `app.models.Message`)."""
        return _describe(self._names.get(name, name))

    def output_type(self, hint: Any, *, nullable: bool = False) -> GraphQLOutputType:
        """The output type for `hint`, e.g. `list[Message] | None` -> `[Message!]`;
        `nullable=True` drops the outer `!`."""
        return self._wrap(hint, self._named_output, nullable)  # type: ignore[no-any-return]

    def input_type(self, hint: Any, *, nullable: bool = False) -> GraphQLInputType:
        """The input type for `hint`, e.g. `Message` -> `MessageInput!`."""
        return self._wrap(hint, self._named_input, nullable)  # type: ignore[no-any-return]

    def argument(self, spec: FieldSpec) -> GraphQLArgument:
        """A resolver argument as a GraphQL argument (with its default, if any)."""
        type_, default = self._input_value(spec)
        return GraphQLArgument(
            type_,
            default_value=default,
            description=spec.description,
            extensions={"python_name": spec.python_name},
        )

    def _wrap(
        self, hint: Any, named: Callable[[Any], GraphQLNamedType], nullable: bool = False
    ) -> Any:
        inner, optional = split_optional(hint)
        item = MISSING if isinstance(inner, tuple) else list_item(inner)
        of_type: Any = named(inner) if item is MISSING else GraphQLList(self._wrap(item, named))
        return of_type if nullable or optional else GraphQLNonNull(of_type)

    def _claim(self, name: str, owner: Any) -> None:
        check_graphql_name(name, "type name")
        if self._names.get(name, owner) != owner:
            raise SubscriptionDefinitionError(
                f"two different types are named {name!r}: {_describe(self._names[name])} "
                f"and {_describe(owner)}"
            )
        self._names[name] = owner

    def _named_output(self, hint: Any) -> GraphQLNamedType:
        if isinstance(hint, tuple):
            return self._cached(self._outputs, hint, self._union_type)
        if _scalar(hint) is not None:
            return _scalar(hint)  # type: ignore[return-value]
        if is_enum_class(hint):
            return self._enum_type(hint)
        if is_object_class(hint):
            return self._cached(self._outputs, hint, self._object_type)
        raise _unsupported(hint)

    def _named_input(self, hint: Any) -> GraphQLNamedType:
        if isinstance(hint, tuple):
            names = " | ".join(hint_name(member) for member in hint)
            raise SubscriptionDefinitionError(f"a union ({names}) cannot be used as an input")
        if _scalar(hint) is not None:
            return _scalar(hint)  # type: ignore[return-value]
        if is_enum_class(hint):
            return self._enum_type(hint)
        if is_object_class(hint):
            return self._cached(self._inputs, hint, self._input_object_type)
        raise _unsupported(hint)

    def _enum_type(self, cls: type[enum.Enum]) -> GraphQLNamedType:
        # Enums serve both directions: one type, kept with the outputs.
        return self._cached(self._outputs, cls, lambda c: (PythonEnumType(c), lambda: None))

    def _cached(
        self,
        cache: dict[Any, GraphQLNamedType],
        key: Any,
        build: Callable[[Any], tuple[GraphQLNamedType, Callable[[], None]]],
    ) -> GraphQLNamedType:
        """Builds a type once: `build` returns the type (its fields behind a thunk) and a
        function that fills the fields; filling happens after caching, so cycles resolve."""
        if key in cache:
            return cache[key]
        gtype, fill = build(key)
        self._claim(gtype.name, key)
        cache[key] = gtype
        try:
            fill()
        except SubscriptionDefinitionError:
            del cache[key]
            del self._names[gtype.name]
            raise
        return gtype

    def _object_type(self, cls: type) -> tuple[GraphQLNamedType, Callable[[], None]]:
        fields: dict[str, GraphQLField] = {}
        gtype = GraphQLObjectType(
            cls.__name__,
            fields=lambda: fields,
            description=class_description(cls),
        )

        def fill() -> None:
            for spec in object_fields(cls):
                if spec.output:
                    with error_context(f"{cls.__name__}.{spec.python_name}"):
                        fields[spec.output_name] = self._output_field(spec)
            if not fields:
                raise SubscriptionDefinitionError(f"{cls.__name__} has no fields")

        return gtype, fill

    def _output_field(self, spec: FieldSpec) -> GraphQLField:
        return GraphQLField(
            # A field that defaults to None may hold None, as an input field may (see above).
            self.output_type(
                spec.output_annotation, nullable=spec.omittable or spec.default is None
            ),
            resolve=_attribute_resolver(spec.python_name, spec.source_key),
            description=spec.description,
            extensions={"python_name": spec.python_name, "source_key": spec.source_key},
        )

    def _input_object_type(self, cls: type) -> tuple[GraphQLNamedType, Callable[[], None]]:
        fields: dict[str, GraphQLInputField] = {}
        gtype = GraphQLInputObjectType(
            f"{cls.__name__}Input", fields=lambda: fields, description=class_description(cls)
        )

        def fill() -> None:
            for spec in object_fields(cls):
                if spec.settable:
                    with error_context(f"{cls.__name__}.{spec.python_name}"):
                        type_, default = self._input_value(spec)
                        fields[spec.graphql_name] = GraphQLInputField(
                            type_,
                            default_value=default,
                            description=spec.description,
                            extensions={"python_name": spec.python_name},
                        )
            if not fields:
                raise SubscriptionDefinitionError(f"{cls.__name__} has no input fields")

        return gtype, fill

    def _input_value(self, spec: FieldSpec) -> tuple[GraphQLInputType, Any]:
        """The input type and GraphQL default of an argument or input field."""
        nullable = spec.omittable or spec.default is None
        type_ = self.input_type(spec.annotation, nullable=nullable)
        if not spec.has_default or spec.default is None:
            return type_, Undefined  # a nullable value left out is None already
        default = to_graphql_input(spec.default, spec.annotation)
        try:
            valid = ast_from_value(default, type_) is not None
        except (GraphQLError, TypeError, ValueError):
            valid = False
        if not valid:
            raise SubscriptionDefinitionError(
                f"default value {spec.default!r} cannot be represented as {type_}"
            )
        return type_, default

    def _union_type(self, members: tuple[Any, ...]) -> tuple[GraphQLNamedType, Callable[[], None]]:
        for member in members:
            if not (is_pydantic_model(member) or dataclasses.is_dataclass(member)):
                raise SubscriptionDefinitionError(
                    f"union member {hint_name(member)} is not a pydantic model or dataclass "
                    "(unions are made of object types that isinstance() can tell apart)"
                )
        objects: list[GraphQLObjectType] = []
        names = {member: member.__name__ for member in members}
        gtype = GraphQLUnionType(
            union_name(members), types=lambda: objects, resolve_type=_resolve_union(names)
        )

        def fill() -> None:
            objects.extend(self._named_output(member) for member in members)  # type: ignore[misc]

        return gtype, fill


def union_name(members: tuple[Any, ...]) -> str:
    """The GraphQL name of a union of classes: `Message | User` -> `MessageOrUser`."""
    return "Or".join(member.__name__ for member in members)


def _describe(owner: Any) -> str:
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    if isinstance(owner, tuple):
        return " | ".join(_describe(member) for member in owner)
    return str(owner)


def _unsupported(hint: Any) -> SubscriptionDefinitionError:
    return SubscriptionDefinitionError(
        f"unsupported type hint {hint_name(hint)}; use {SUPPORTED_HINTS}"
    )


def _attribute_resolver(python_name: str, source_key: str) -> Callable[..., Any]:
    """Reads a field by its Python name from an object, from a mapping by its source key (as in
    `to_jsonable`'s result) or Python name (for query execution)."""

    def resolve(source: Any, _info: GraphQLResolveInfo[Any], **_args: Any) -> Any:
        if isinstance(source, Mapping):
            return source.get(source_key, source.get(python_name))
        return getattr(source, python_name, None)

    return resolve


def _resolve_union(names: Mapping[Any, str]) -> Callable[..., str | None]:
    def resolve_type(value: Any, _info: GraphQLResolveInfo[Any], _abstract: Any) -> str | None:
        if isinstance(value, Mapping):
            typename = value.get("__typename")
            return typename if isinstance(typename, str) else None
        return next((name for cls, name in names.items() if isinstance(value, cls)), None)

    return resolve_type
