"""Python type hints as GraphQL types, and the conversions between the two worlds.

Supported hints, for arguments and results alike: `str`, `int`, `float`, `bool`, `ID`,
`uuid.UUID` (scalar `UUID`), `datetime.datetime` (`DateTime`, ISO 8601), `datetime.date`
(`Date`), `enum.Enum` subclasses, pydantic models, dataclasses and TypedDicts (object types;
as arguments, input types named `<Name>Input`), `Optional[X]` / `X | None`, `list[X]` /
`Sequence[X]` / `tuple[X, ...]`, and, for results only, unions of models or dataclasses
(`A | B`, named `AOrB`). `Annotated[X, ...]` is read as `X`; any other `NewType` as its base.

Nullability follows the hint: `X` is `X!`, `X | None` is `X`. A parameter or field that
defaults to None is nullable too.

Names: classes keep their name, fields and arguments are camelCased (`room_id` -> `roomId`,
a trailing `_` as in `type_` is dropped). Each GraphQL field records the Python name it comes
from (`FieldSpec`, and `extensions["python_name"]` on the graphql-core field).

Values cross three forms, converted here:
- Python: what resolvers take and return (models, dataclasses, enum members, datetimes).
- GraphQL-coerced: what graphql-core produces for arguments (dicts keyed by GraphQL names,
  enum members, `UUID`/`datetime`/`date` objects).
- JSON: what the Rust core stores and projects. Results (`to_jsonable`) are keyed by Python
  names, arguments (`args_to_json`) by GraphQL names; enums are their GraphQL names, datetimes
  and dates ISO 8601 strings, UUIDs strings.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import datetime
import enum
import functools
import inspect
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final, NamedTuple, NewType, Union

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLEnumValue,
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
    StringValueNode,
    Undefined,
    ValueNode,
    ast_from_value,
    print_ast,
)
from graphql.pyutils import inspect as inspect_value

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .decorator import SubscriptionField

__all__ = [
    "ID",
    "MISSING",
    "FieldSpec",
    "GraphQLDate",
    "GraphQLDateTime",
    "GraphQLUUID",
    "PythonEnumType",
    "SubscriptionDefinitionError",
    "TypeMapper",
    "args_to_json",
    "camel_case",
    "check_graphql_name",
    "enum_member",
    "error_context",
    "from_graphql_args",
    "hint_name",
    "object_fields",
    "to_graphql_input",
    "to_jsonable",
    "union_name",
]

#: The GraphQL `ID` scalar: serialized as a string, accepts strings and integers as input.
ID = NewType("ID", str)

Converter = Callable[[Any], Any]

_NAME_RE: Final = re.compile(r"[_A-Za-z][_0-9A-Za-z]*\Z")
_NONE_TYPE: Final = type(None)
# TypedDict key qualifiers (typing or typing_extensions), which say nothing about the type.
_QUALIFIERS: Final = frozenset({"Required", "NotRequired", "ReadOnly"})

SUPPORTED_HINTS: Final = (
    "str, int, float, bool, ID, UUID, datetime, date, an Enum, a pydantic model, a dataclass "
    "or a TypedDict, or Optional[...] / list[...] of these"
)


class SubscriptionDefinitionError(TypeError):
    """A resolver, or a type it uses, cannot be turned into GraphQL.

    Raised at import time (by `@subscription`) or when the schema is built; the message names
    the function and the problem, e.g. `message_posted: parameter 'room_id' has no type hint`.
    """


class _Missing(enum.Enum):
    MISSING = enum.auto()

    def __repr__(self) -> str:
        return "MISSING"


#: Marks "no default value" (None is a legitimate default).
MISSING: Final = _Missing.MISSING


# --- names ---------------------------------------------------------------------------------


def camel_case(name: str) -> str:
    """The GraphQL name of a Python name: `room_id` -> `roomId`, `_private_x` -> `_privateX`,
    `type_` -> `type`. Leading underscores stay; other underscores go and capitalize the next
    letter; the rest of each word is kept as is (`user_ID` -> `userID`)."""
    stripped = name.lstrip("_")
    prefix = name[: len(name) - len(stripped)]
    head, *rest = stripped.split("_")
    return prefix + head + "".join(part[:1].upper() + part[1:] for part in rest)


def check_graphql_name(name: str, what: str) -> str:
    """Returns `name` if it is a valid GraphQL name that is not reserved (`__...`), else raises
    SubscriptionDefinitionError naming `what`."""
    if not _NAME_RE.match(name):
        raise SubscriptionDefinitionError(
            f"{what} {name!r} is not a valid GraphQL name (letters, digits and _, "
            "not starting with a digit)"
        )
    if name.startswith("__"):
        raise SubscriptionDefinitionError(
            f"{what} {name!r} starts with '__', which GraphQL reserves for introspection"
        )
    return name


def hint_name(hint: Any) -> str:
    """A readable name for a type hint, for error messages: `set[str]`, `Message`."""
    if hint is ID:
        return "ID"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


@contextlib.contextmanager
def error_context(prefix: str) -> Iterator[None]:
    """Prefixes a SubscriptionDefinitionError raised inside with `prefix: `, so the message
    says where the problem is (`message_posted: parameter 'tags': Tag.name: ...`)."""
    try:
        yield
    except SubscriptionDefinitionError as error:
        raise SubscriptionDefinitionError(f"{prefix}: {error}") from None


# --- reading hints -------------------------------------------------------------------------


def _strip_wrappers(hint: Any) -> Any:
    """Removes `Annotated[...]`, `Required`/`NotRequired`/`ReadOnly` and NewTypes other than
    `ID`."""
    while True:
        origin = typing.get_origin(hint)
        if origin is Annotated or getattr(origin, "_name", None) in _QUALIFIERS:
            hint = typing.get_args(hint)[0]
        elif hint is not ID and hasattr(hint, "__supertype__"):
            hint = hint.__supertype__
        else:
            return hint


def split_optional(hint: Any) -> tuple[Any, bool]:
    """`(inner, nullable)`: `X | None` -> `(X, True)`, `X` -> `(X, False)`. A union of
    several non-None types is returned as a tuple of its members."""
    hint = _strip_wrappers(hint)
    if typing.get_origin(hint) not in (Union, types.UnionType):
        return hint, False
    members = typing.get_args(hint)
    present = tuple(_strip_wrappers(m) for m in members if m is not _NONE_TYPE)
    nullable = len(present) < len(members)
    return (present[0] if len(present) == 1 else present), nullable


def list_item(hint: Any) -> Any:
    """The item hint of `list[X]`, `Sequence[X]` or `tuple[X, ...]`; MISSING for others."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (list, collections.abc.Sequence) and len(args) == 1:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    if hint in (list, tuple, collections.abc.Sequence) or origin in (list, tuple):
        raise SubscriptionDefinitionError(
            f"{hint_name(hint)} needs one item type, as in list[str] or tuple[str, ...]"
        )
    return MISSING


def is_pydantic_model(hint: Any) -> bool:
    """Whether `hint` is a pydantic model class (without importing pydantic)."""
    pydantic = sys.modules.get("pydantic")
    return (
        pydantic is not None
        and isinstance(hint, type)
        and issubclass(hint, pydantic.BaseModel)
        and hint is not pydantic.BaseModel
    )


def is_typeddict(hint: Any) -> bool:
    """Whether `hint` is a TypedDict class (from `typing` or `typing_extensions`)."""
    return (
        isinstance(hint, type)
        and issubclass(hint, dict)
        and hasattr(hint, "__required_keys__")
        and hasattr(hint, "__annotations__")
    )


def is_object_class(hint: Any) -> bool:
    """Whether `hint` maps to a GraphQL object (or input object) type."""
    return is_pydantic_model(hint) or is_typeddict(hint) or dataclasses.is_dataclass(hint)


def is_enum_class(hint: Any) -> bool:
    """Whether `hint` is an `enum.Enum` subclass."""
    return isinstance(hint, type) and issubclass(hint, enum.Enum)


def class_description(cls: type) -> str | None:
    """The class's own docstring, cleaned; None when it has none (dataclasses' generated
    signature docstring does not count)."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return None
    if dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("):
        return None
    return inspect.cleandoc(doc)


# --- object fields -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One field of an object type, or one argument of a resolver.

    `default` is the Python default value (MISSING when there is none); `omittable` marks a
    value that may be left out although it has no plain default (a `default_factory`, a
    TypedDict key that is not required): in GraphQL it is nullable and, when left out or null,
    it is not passed on, so Python fills it. `settable` is False for output-only fields
    (computed fields, dataclass fields with `init=False`).
    """

    python_name: str
    graphql_name: str
    annotation: Any
    description: str | None = None
    default: Any = MISSING
    omittable: bool = False
    settable: bool = True

    @property
    def has_default(self) -> bool:
        """Whether the field or argument has a plain Python default value."""
        return self.default is not MISSING


@functools.cache
def object_fields(cls: type) -> tuple[FieldSpec, ...]:
    """The fields of a pydantic model, dataclass or TypedDict, in definition order. Raises
    SubscriptionDefinitionError for a class whose hints cannot be resolved or whose field
    names clash once camelCased."""
    if is_pydantic_model(cls):
        specs = _pydantic_fields(cls)
    elif dataclasses.is_dataclass(cls):
        specs = _dataclass_fields(cls)
    elif is_typeddict(cls):
        specs = _typeddict_fields(cls)
    else:
        raise SubscriptionDefinitionError(
            f"{hint_name(cls)} is not a model, dataclass or TypedDict"
        )
    _check_unique_names(cls, specs)
    return specs


def _check_unique_names(cls: type, specs: tuple[FieldSpec, ...]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        check_graphql_name(spec.graphql_name, f"{cls.__name__}: field")
        if spec.graphql_name in seen:
            raise SubscriptionDefinitionError(
                f"{cls.__name__}: fields {seen[spec.graphql_name]!r} and {spec.python_name!r} "
                f"both become {spec.graphql_name!r} in GraphQL"
            )
        seen[spec.graphql_name] = spec.python_name


def _type_hints(cls: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as error:  # NameError, TypeError: unresolvable or malformed annotations
        raise SubscriptionDefinitionError(
            f"cannot resolve the type hints of {hint_name(cls)}: {error}"
        ) from error


def _pydantic_fields(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    if not model.__pydantic_complete__:
        try:
            model.model_rebuild()
        except Exception as error:  # pydantic raises its own errors for undefined names
            raise SubscriptionDefinitionError(
                f"pydantic model {model.__name__} is not fully defined: {error}"
            ) from error
    specs = []
    for name, info in model.model_fields.items():
        has_factory = info.default_factory is not None
        default = MISSING if info.is_required() or has_factory else info.default
        spec = FieldSpec(name, camel_case(name), info.annotation, info.description, default)
        specs.append(dataclasses.replace(spec, omittable=has_factory))
    for name, computed in model.model_computed_fields.items():
        hint = computed.return_type
        specs.append(FieldSpec(name, camel_case(name), hint, computed.description, settable=False))
    return tuple(specs)


def _dataclass_fields(cls: Any) -> tuple[FieldSpec, ...]:
    hints = _type_hints(cls)
    specs = []
    for field in dataclasses.fields(cls):
        has_factory = field.default_factory is not dataclasses.MISSING
        default = MISSING if field.default is dataclasses.MISSING else field.default
        description = field.metadata.get("description")
        specs.append(
            FieldSpec(
                field.name,
                camel_case(field.name),
                hints[field.name],
                description if isinstance(description, str) else None,
                default,
                omittable=has_factory,
                settable=field.init,
            )
        )
    return tuple(specs)


def _typeddict_fields(cls: Any) -> tuple[FieldSpec, ...]:
    hints = _type_hints(cls)
    required: frozenset[str] = cls.__required_keys__
    return tuple(
        FieldSpec(key, camel_case(key), hint, omittable=key not in required)
        for key, hint in hints.items()
    )


def _pydantic_init_key(model: Any, name: str) -> str:
    """The keyword under which a pydantic model accepts field `name` (its alias, if any)."""
    info = model.model_fields[name]
    if isinstance(info.validation_alias, str):
        return str(info.validation_alias)
    return str(info.alias) if info.alias else name


# --- scalars -------------------------------------------------------------------------------


def _parse_datetime(text: str) -> datetime.datetime:
    # Python 3.10's fromisoformat does not read the "Z" suffix.
    return datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _string_scalar(
    name: str,
    description: str,
    python_type: type,
    parse: Callable[[str], Any],
    url: str,
) -> GraphQLScalarType:
    """A scalar carried as a string: `parse` reads the string, `isoformat()`/`str()` writes."""

    def to_text(value: Any) -> str:
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    def serialize(value: Any) -> str:
        # A datetime is a date, but Date does not silently drop its time.
        if isinstance(value, python_type) and not (
            python_type is datetime.date and isinstance(value, datetime.datetime)
        ):
            return to_text(value)
        if isinstance(value, str):
            return to_text(parse_value(value))
        raise GraphQLError(f"{name} cannot represent value: {inspect_value(value)}")

    def parse_value(value: Any) -> Any:
        if not isinstance(value, str):
            raise GraphQLError(f"{name} cannot represent non-string value: {inspect_value(value)}")
        try:
            return parse(value)
        except ValueError:
            raise GraphQLError(f"{name} cannot represent value: {inspect_value(value)}") from None

    def parse_literal(node: ValueNode, _variables: Any = None) -> Any:
        # Errors carry the node, so validation reports where the bad literal is.
        if not isinstance(node, StringValueNode):
            raise GraphQLError(f"{name} cannot represent non-string value: {print_ast(node)}", node)
        try:
            return parse(node.value)
        except ValueError:
            raise GraphQLError(f"{name} cannot represent value: {print_ast(node)}", node) from None

    return GraphQLScalarType(
        name,
        serialize=serialize,
        parse_value=parse_value,
        parse_literal=parse_literal,
        description=description,
        specified_by_url=url,
    )


#: `uuid.UUID`, as a string such as "3f2504e0-4f89-11d3-9a0c-0305e82c3301".
GraphQLUUID: Final = _string_scalar(
    "UUID",
    "A UUID, e.g. 3f2504e0-4f89-11d3-9a0c-0305e82c3301.",
    uuid.UUID,
    uuid.UUID,
    "https://datatracker.ietf.org/doc/html/rfc4122",
)
#: `datetime.datetime`, as an ISO 8601 string ("2024-05-01T12:30:00+00:00"; "Z" is accepted).
GraphQLDateTime: Final = _string_scalar(
    "DateTime",
    "An ISO 8601 date and time, e.g. 2024-05-01T12:30:00+00:00.",
    datetime.datetime,
    _parse_datetime,
    "https://datatracker.ietf.org/doc/html/rfc3339",
)
#: `datetime.date`, as an ISO 8601 string ("2024-05-01").
GraphQLDate: Final = _string_scalar(
    "Date",
    "An ISO 8601 calendar date, e.g. 2024-05-01.",
    datetime.date,
    datetime.date.fromisoformat,
    "https://datatracker.ietf.org/doc/html/rfc3339",
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
}


def _scalar(hint: Any) -> GraphQLScalarType | None:
    try:
        return _SCALARS.get(hint)
    except TypeError:  # unhashable hint
        return None


# --- enums ---------------------------------------------------------------------------------


def enum_member(cls: type[enum.Enum], value: Any) -> enum.Enum | None:
    """The member of `cls` that `value` stands for: the member itself, a member's value, or a
    member's name; None if none."""
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except (ValueError, TypeError):
        pass
    if isinstance(value, str) and value in cls.__members__:
        return cls.__members__[value]
    return None


class PythonEnumType(GraphQLEnumType):
    """A GraphQL enum made from a Python Enum: member names are the GraphQL values, members the
    internal values; serializes a member, a member's value or a member's name."""

    def __init__(self, cls: type[enum.Enum]) -> None:
        members = list(cls)
        if not members:
            raise SubscriptionDefinitionError(f"enum {cls.__name__} has no members")
        for member in members:
            check_graphql_name(member.name, f"{cls.__name__}: member")
            if member.name in ("true", "false", "null"):
                raise SubscriptionDefinitionError(
                    f"{cls.__name__}: member {member.name!r} cannot be a GraphQL enum value"
                )
        values = {member.name: GraphQLEnumValue(member) for member in members}
        super().__init__(cls.__name__, values, description=class_description(cls))
        self.python_enum = cls

    def serialize(self, output_value: Any) -> str:
        """The GraphQL name of a member, a member's value or a member's name."""
        member = enum_member(self.python_enum, output_value)
        if member is None:
            raise GraphQLError(
                f"Enum '{self.name}' cannot represent value: {inspect_value(output_value)}"
            )
        return member.name


# --- the mapper ----------------------------------------------------------------------------


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
                with error_context(f"{cls.__name__}.{spec.python_name}"):
                    fields[spec.graphql_name] = self._output_field(spec)
            if not fields:
                raise SubscriptionDefinitionError(f"{cls.__name__} has no fields")

        return gtype, fill

    def _output_field(self, spec: FieldSpec) -> GraphQLField:
        return GraphQLField(
            self.output_type(spec.annotation, nullable=spec.omittable),
            resolve=_attribute_resolver(spec.python_name),
            description=spec.description,
            extensions={"python_name": spec.python_name},
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


def _attribute_resolver(python_name: str) -> Callable[..., Any]:
    """Reads a field by its Python name, from a mapping or an object (for query execution)."""

    def resolve(source: Any, _info: GraphQLResolveInfo, **_args: Any) -> Any:
        if isinstance(source, Mapping):
            return source.get(python_name)
        return getattr(source, python_name, None)

    return resolve


def _resolve_union(names: Mapping[Any, str]) -> Callable[..., str | None]:
    def resolve_type(value: Any, _info: GraphQLResolveInfo, _abstract: Any) -> str | None:
        if isinstance(value, Mapping):
            typename = value.get("__typename")
            return typename if isinstance(typename, str) else None
        return next((name for cls, name in names.items() if isinstance(value, cls)), None)

    return resolve_type


# --- Python -> GraphQL-coerced (defaults) ---------------------------------------------------


def to_graphql_input(value: Any, hint: Any) -> Any:
    """A Python value in graphql-core's coerced form for `hint` (used for default values):
    objects become dicts keyed by GraphQL names, enum values become members."""
    if value is None:
        return None
    inner, _ = split_optional(hint)
    item = list_item(inner) if not isinstance(inner, tuple) else MISSING
    if item is not MISSING:
        return [to_graphql_input(element, item) for element in value]
    if is_enum_class(inner):
        return enum_member(inner, value)
    if is_object_class(inner):
        result = {}
        for spec in object_fields(inner):
            field_value = _read(value, spec.python_name)
            if spec.settable and field_value is not MISSING:
                result[spec.graphql_name] = to_graphql_input(field_value, spec.annotation)
        return result
    return value


def _read(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, MISSING)
    return getattr(value, name, MISSING)


# --- compiled converters -------------------------------------------------------------------


class _ConverterCache:
    """Compiles a converter per hint, once. Object converters are cached before their fields
    are compiled (lazily, on first use), so recursive classes compile."""

    def __init__(self, compile_hint: Callable[[Any], Converter]) -> None:
        self._compile = compile_hint
        self._cache: dict[Any, Converter] = {}

    def __call__(self, hint: Any) -> Converter:
        try:
            return self._cache[hint]
        except KeyError:
            converter = self._cache[hint] = self._compile(hint)
            return converter
        except TypeError:  # an unhashable hint (Annotated with unhashable metadata)
            return self._compile(hint)


def _nullable(converter: Converter) -> Converter:
    return lambda value: None if value is None else converter(value)


# JSON output (to_jsonable) ---------------------------------------------------------------


def _json_any(value: Any) -> Any:
    """Any value as JSON-compatible data: models and dataclasses by field name, enums by name,
    datetimes, dates and UUIDs as strings."""
    if isinstance(value, enum.Enum):
        return value.name
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(_json_any(key)): _json_any(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_any(item) for item in value]
    cls: type = type(value)
    if is_object_class(cls):
        specs = object_fields(cls)
        return {spec.python_name: _json_any(getattr(value, spec.python_name)) for spec in specs}
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-serializable")


class _ObjectToJson:
    def __init__(self, cls: type) -> None:
        self._cls = cls
        self._fields: list[tuple[str, Converter]] | None = None

    def __call__(self, value: Any) -> Any:
        if self._fields is None:
            self._fields = [
                (spec.python_name, _json_converter(spec.annotation))
                for spec in object_fields(self._cls)
            ]
        result = {}
        for name, convert in self._fields:
            field_value = _read(value, name)
            if field_value is not MISSING:
                result[name] = convert(field_value)
        return result


def _union_to_json(members: tuple[Any, ...]) -> Converter:
    by_name = {member.__name__: member for member in members}

    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            member = by_name.get(value.get("__typename"))
        else:
            member = next((m for m in members if isinstance(value, m)), None)
        if member is None:
            raise TypeError(
                f"{type(value).__name__} value is none of {', '.join(by_name)} (a dict needs "
                "a '__typename' naming one of them)"
            )
        return {**_json_converter(member)(value), "__typename": member.__name__}

    return convert


def _enum_to_json(cls: type[enum.Enum]) -> Converter:
    def convert(value: Any) -> Any:
        member = enum_member(cls, value)
        return value if member is None else member.name  # the Rust core reports bad values

    return convert


def _compile_to_json(hint: Any) -> Converter:
    if hint is Any or hint is object:
        return _json_any
    inner, _ = split_optional(hint)
    if isinstance(inner, tuple):
        return _nullable(_union_to_json(inner))
    item = list_item(inner)
    if item is not MISSING:
        convert_item = _json_converter(item)
        return _nullable(
            lambda value: (
                [convert_item(element) for element in value]
                if isinstance(value, (list, tuple, set, frozenset))
                else _json_any(value)
            )
        )
    if is_enum_class(inner):
        return _nullable(_enum_to_json(inner))
    if is_object_class(inner):
        return _nullable(_ObjectToJson(inner))
    return _json_any


_json_converter = _ConverterCache(_compile_to_json)


def to_jsonable(value: Any, annotation: Any = Any) -> Any:
    """A resolver's result as JSON-compatible data, keyed by the **Python** names.

    Models, dataclasses and objects are read by attribute, dicts (and TypedDicts) by key;
    fields missing from the value are left out (the Rust core reports them as null). Enums
    become their member name (a member, its value or its name are accepted), datetimes and
    dates ISO 8601 strings, UUIDs strings. At a union, the object gets a `__typename` (from
    its class, or kept from a dict that carries one). Values the annotation does not explain
    are converted by their own type; what cannot be JSON raises TypeError.
    """
    return _json_converter(annotation)(value)


# GraphQL-coerced or JSON arguments -> Python (from_graphql_args) --------------------------


class _InputSlot(NamedTuple):
    """How one input value (keyed by GraphQL name) becomes one keyword argument."""

    graphql_name: str
    keyword: str
    convert: Converter
    #: A null here is not passed on (Python's default applies): the value is omittable or has
    #: a default, and its Python hint does not take None.
    skip_null: bool
    #: A value left out is passed as None (no default to fall back on).
    none_if_missing: bool

    @classmethod
    def of(cls, spec: FieldSpec, keyword: str) -> _InputSlot:
        """The slot of an argument or input field; `keyword` is the constructor's name for it."""
        fallback = spec.has_default or spec.omittable
        return cls(
            spec.graphql_name,
            keyword,
            _python_converter(spec.annotation),
            skip_null=fallback and not split_optional(spec.annotation)[1],
            none_if_missing=not fallback,
        )


def _input_kwargs(slots: Sequence[_InputSlot], values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments from input values keyed by GraphQL names."""
    kwargs: dict[str, Any] = {}
    for slot in slots:
        value = values.get(slot.graphql_name, MISSING)
        if value is MISSING:
            if slot.none_if_missing:
                kwargs[slot.keyword] = None
        elif value is not None:
            kwargs[slot.keyword] = slot.convert(value)
        elif not slot.skip_null:
            kwargs[slot.keyword] = None
    return kwargs


class _ObjectFromInput:
    def __init__(self, cls: type) -> None:
        self._cls = cls
        self._slots: list[_InputSlot] | None = None

    def __call__(self, value: Mapping[str, Any]) -> Any:
        if self._slots is None:
            self._slots = [
                _InputSlot.of(spec, self._keyword(spec))
                for spec in object_fields(self._cls)
                if spec.settable
            ]
        kwargs = _input_kwargs(self._slots, value)
        return kwargs if is_typeddict(self._cls) else self._cls(**kwargs)

    def _keyword(self, spec: FieldSpec) -> str:
        if is_pydantic_model(self._cls):
            return _pydantic_init_key(self._cls, spec.python_name)
        return spec.python_name


def _enum_from_input(cls: type[enum.Enum]) -> Converter:
    def convert(value: Any) -> Any:
        return value if isinstance(value, cls) else cls.__members__[value]

    return convert


def _parsed_from(parse: Callable[[str], Any]) -> Converter:
    # Strings are the JSON form; graphql-core's coerced form is already parsed.
    return lambda value: parse(value) if isinstance(value, str) else value


_PARSERS: Final[Mapping[Any, Converter]] = {
    uuid.UUID: _parsed_from(uuid.UUID),
    datetime.datetime: _parsed_from(_parse_datetime),
    datetime.date: _parsed_from(datetime.date.fromisoformat),
}


def _compile_to_python(hint: Any) -> Converter:
    inner, _ = split_optional(hint)
    item = list_item(inner) if not isinstance(inner, tuple) else MISSING
    if item is not MISSING:
        convert_item = _python_converter(item)
        return _nullable(lambda value: [convert_item(element) for element in value])
    if is_enum_class(inner):
        return _nullable(_enum_from_input(inner))
    if is_object_class(inner):
        return _nullable(_ObjectFromInput(inner))
    return _nullable(_PARSERS.get(inner, lambda value: value))


_python_converter = _ConverterCache(_compile_to_python)


@functools.cache
def _argument_slots(field: SubscriptionField) -> list[_InputSlot]:
    return [_InputSlot.of(spec, spec.python_name) for spec in field.arguments]


def from_graphql_args(field: SubscriptionField, coerced_args: Mapping[str, Any]) -> dict[str, Any]:
    """The resolver's keyword arguments (Python names) from its GraphQL arguments (GraphQL
    names): input objects become instances of their model / dataclass / TypedDict, enums
    members. Takes graphql-core's coerced values or their JSON form (`args_to_json`'s result,
    which is what the Rust core hands back). An argument left out is None unless the Python
    signature has a default. Raises ValueError (e.g. pydantic's ValidationError) or KeyError
    for values a model refuses or an unknown enum name."""
    return _input_kwargs(_argument_slots(field), coerced_args)


def args_to_json(field: SubscriptionField, coerced_args: Mapping[str, Any]) -> dict[str, Any]:
    """The GraphQL arguments as JSON, keyed by GraphQL names, with every declared argument
    present (null when left out): the form the Rust core groups subscriptions by and filters
    on. Enums become names; datetimes, dates and UUIDs strings."""
    return {
        spec.graphql_name: _json_any(coerced_args.get(spec.graphql_name))
        for spec in field.arguments
    }
