"""Values between Python and GraphQL or JSON: `to_graphql_input` (defaults), `to_jsonable`
(results), `from_graphql_args` and `args_to_json` (arguments), each compiled once per type hint.
Values cross three forms:
- Python: what resolvers take and return (models, dataclasses, enum members, datetimes).
- GraphQL-coerced: what graphql-core produces for arguments (dicts keyed by GraphQL names,
  enum members, `UUID`/`datetime`/`date` objects).
- JSON: what the Rust core stores and projects. Results (`to_jsonable`) are keyed by source
  keys (`FieldSpec.source_key`: the Python name, or a pydantic field's serialization alias),
  arguments (`args_to_json`) by GraphQL names; enums are their GraphQL names, datetimes, dates
  and times ISO 8601 strings, UUIDs and decimals strings.

Pydantic model instances in results go through pydantic's own serializer (JSON mode, by alias,
as FastAPI responses), so `field_serializer`, `model_serializer`, aliases, computed fields and
the model's configuration apply; what GraphQL needs and pydantic does not do (enum fields as
member names, `__typename` on union members) is patched in afterwards, only for the models
that have such fields. Dicts, dataclasses and TypedDicts keep the converters compiled here.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol

from .hints import (
    FieldSpec,
    is_enum_class,
    is_object_class,
    is_pydantic_model,
    is_typeddict,
    list_item,
    object_fields,
    split_optional,
)
from .names import MISSING
from .scalars import _parse_datetime, _parse_decimal, _parse_time, enum_member

__all__ = ["args_to_json", "from_graphql_args", "to_graphql_input", "to_jsonable"]

Converter = Callable[[Any], Any]


class HasArguments(Protocol):
    """Anything that declares GraphQL arguments (a `SubscriptionField`); hashable, since its
    converters are compiled once per owner."""

    @property
    def arguments(self) -> Sequence[FieldSpec]: ...

    def __hash__(self) -> int: ...


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
    datetimes, dates, times, UUIDs and decimals as strings."""
    if isinstance(value, enum.Enum):
        return value.name
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
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
        self._fields: list[tuple[str, str, Converter]] | None = None

    def __call__(self, value: Any) -> Any:
        if self._fields is None:
            self._fields = [
                (spec.python_name, spec.source_key, _json_converter(spec.annotation))
                for spec in object_fields(self._cls)
                if spec.output
            ]
        result = {}
        for name, key, convert in self._fields:
            field_value = _read(value, name)
            if field_value is not MISSING:
                result[key] = convert(field_value)
        return result


class _PydanticToJson:
    """A pydantic model's instances through its own serializer (JSON mode, by alias), patched
    where GraphQL needs it (`_fixer`); other values (dicts, objects) as `_ObjectToJson`."""

    def __init__(self, cls: Any) -> None:
        self._cls = cls
        self._to_python = cls.__pydantic_serializer__.to_python
        self._fallback = _ObjectToJson(cls)
        self._fix: Fixer | _Pending | None = _PENDING

    def __call__(self, value: Any) -> Any:
        # A dict is the common other case: skip pydantic's (ABC) isinstance for it.
        cls = type(value)
        if cls is not self._cls and (cls is dict or not isinstance(value, self._cls)):
            return self._fallback(value)
        result = self._to_python(value, mode="json", by_alias=True)
        if self._fix is _PENDING:
            self._fix = _fixer(self._cls)
        return result if self._fix is None else self._fix(value, result)


# Patching pydantic's JSON: (Python value, its JSON) -> the JSON GraphQL needs --------------

Fixer = Callable[[Any, Any], Any]


class _Pending(enum.Enum):
    PENDING = enum.auto()


_PENDING: Final = _Pending.PENDING


def _has_model_serializer(cls: Any) -> bool:
    return is_pydantic_model(cls) and bool(cls.__pydantic_decorators__.model_serializers)


def _needs_fix(hint: Any, seen: set[Any]) -> bool:
    """Whether pydantic's JSON for `hint` holds enums (pydantic writes their values, GraphQL
    wants names) or union members (GraphQL needs their `__typename`). Fields with their own
    `field_serializer` and models with a `model_serializer` are left as their serializer
    makes them."""
    inner, _ = split_optional(hint)
    if isinstance(inner, tuple):
        return True
    item = list_item(inner)
    if item is not MISSING:
        return _needs_fix(item, seen)
    if is_enum_class(inner):
        return True
    if is_object_class(inner):
        if inner in seen or _has_model_serializer(inner):
            return False
        seen.add(inner)
        return any(
            not spec.custom_serializer and _needs_fix(spec.annotation, seen)
            for spec in object_fields(inner)
        )
    return False


class _ObjectFixer:
    def __init__(self, cls: type) -> None:
        self._cls = cls
        self._fields: list[tuple[str, str, Fixer]] | None = None

    def __call__(self, value: Any, json_value: Any) -> Any:
        if not isinstance(json_value, dict):
            return json_value
        if self._fields is None:
            self._fields = []
            for spec in object_fields(self._cls):
                fix = None if spec.custom_serializer else _fixer(spec.annotation)
                if fix is not None:
                    self._fields.append((spec.python_name, spec.source_key, fix))
        for name, key, fix in self._fields:
            if key in json_value:
                field_value = _read(value, name)
                if field_value is not MISSING:
                    json_value[key] = fix(field_value, json_value[key])
        return json_value


def _enum_fixer(cls: type[enum.Enum]) -> Fixer:
    def fix(value: Any, json_value: Any) -> Any:
        member = enum_member(cls, value)
        return json_value if member is None else member.name

    return fix


def _list_fixer(fix_item: Fixer) -> Fixer:
    def fix(value: Any, json_value: Any) -> Any:
        if not isinstance(json_value, list) or not isinstance(value, (list, tuple)):
            return json_value
        return [
            fix_item(item, json_item) for item, json_item in zip(value, json_value, strict=False)
        ]

    return fix


def _union_fixer(members: tuple[Any, ...]) -> Fixer:
    def fix(value: Any, json_value: Any) -> Any:
        member = next((m for m in members if isinstance(value, m)), None)
        if member is None or not isinstance(json_value, dict):
            return json_value
        json_value["__typename"] = member.__name__
        fix_member = _fixer(member)
        return json_value if fix_member is None else fix_member(value, json_value)

    return fix


def _compile_fixer(hint: Any) -> Fixer | None:
    if not _needs_fix(hint, set()):
        return None
    inner, _ = split_optional(hint)
    fix: Fixer
    if isinstance(inner, tuple):
        fix = _union_fixer(inner)
    elif (item := list_item(inner)) is not MISSING:
        fix = _list_fixer(_fixer(item))  # type: ignore[arg-type]  # an item that needs it
    elif is_enum_class(inner):
        fix = _enum_fixer(inner)
    else:
        fix = _ObjectFixer(inner)
    return lambda value, json_value: (
        json_value if value is None or json_value is None else fix(value, json_value)
    )


_fixer: Callable[[Any], Fixer | None] = _ConverterCache(_compile_fixer)  # type: ignore[arg-type,assignment]


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
    if is_pydantic_model(inner):
        return _nullable(_PydanticToJson(inner))
    if is_object_class(inner):
        return _nullable(_ObjectToJson(inner))
    return _json_any


_json_converter = _ConverterCache(_compile_to_json)


def to_jsonable(value: Any, annotation: Any = Any) -> Any:
    """A resolver's result as JSON-compatible data, keyed by source keys (the Python names,
    or a pydantic field's serialization alias).

    An instance of the pydantic model the annotation names is serialized by pydantic (JSON
    mode, by alias: its serializers, aliases and computed fields apply), with enum fields as
    member names and union members tagged. Dataclasses and other objects are read by
    attribute, dicts (and TypedDicts) by key (by Python name); fields missing from the value
    are left out (the Rust core reports them as null). Enums become their member name (a
    member, its value or its name are accepted), datetimes, dates and times ISO 8601 strings,
    UUIDs and decimals strings. At a union, the object gets a `__typename` (from
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


def _pydantic_init_key(model: Any, name: str) -> str:
    """The keyword under which a pydantic model accepts field `name` (its alias, if any)."""
    info = model.model_fields[name]
    if isinstance(info.validation_alias, str):
        return str(info.validation_alias)
    return str(info.alias) if info.alias else name


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
    datetime.time: _parsed_from(_parse_time),
    decimal.Decimal: lambda value: (
        value if isinstance(value, decimal.Decimal) else _parse_decimal(value)
    ),
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
def _argument_slots(field: HasArguments) -> list[_InputSlot]:
    return [_InputSlot.of(spec, spec.python_name) for spec in field.arguments]


def from_graphql_args(field: HasArguments, coerced_args: Mapping[str, Any]) -> dict[str, Any]:
    """The resolver's keyword arguments (Python names) from its GraphQL arguments (GraphQL
    names): input objects become instances of their model / dataclass / TypedDict, enums
    members. Takes graphql-core's coerced values or their JSON form (`args_to_json`'s result,
    which is what the Rust core hands back). An argument left out is None unless the Python
    signature has a default. Raises ValueError (e.g. pydantic's ValidationError) or KeyError
    for values a model refuses or an unknown enum name."""
    return _input_kwargs(_argument_slots(field), coerced_args)


def args_to_json(field: HasArguments, coerced_args: Mapping[str, Any]) -> dict[str, Any]:
    """The GraphQL arguments as JSON, keyed by GraphQL names, with every declared argument
    present (null when left out): the form the Rust core groups subscriptions by and filters
    on. Enums become names; datetimes, dates and UUIDs strings."""
    return {
        spec.graphql_name: _json_any(coerced_args.get(spec.graphql_name))
        for spec in field.arguments
    }
