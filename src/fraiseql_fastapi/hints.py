"""Reading Python type hints: what a hint is (`split_optional`, `list_item`, `is_object_class`,
`is_enum_class`, ...) and the fields of a pydantic model, dataclass or TypedDict
(`object_fields`, as `FieldSpec`s), in the terms the GraphQL mapping and the value conversions
both need. `Annotated[X, ...]` is read as `X`; any other `NewType` than `ID` as its base.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import inspect
import sys
import types
import typing
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeAlias, Union

from .errors import SubscriptionDefinitionError
from .names import ID, MISSING, camel_case, check_graphql_name, hint_name

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "JSON",
    "FieldSpec",
    "class_description",
    "is_enum_class",
    "is_object_class",
    "is_pydantic_model",
    "is_typeddict",
    "list_item",
    "object_fields",
    "split_optional",
]

_NONE_TYPE: Final = type(None)
# TypedDict key qualifiers (typing or typing_extensions), which say nothing about the type.
_QUALIFIERS: Final = frozenset({"Required", "NotRequired", "ReadOnly"})


class _JSONMarker:
    """Marks `JSON` inside `Annotated` (so `Annotated[JSON, ...]` is still JSON)."""

    def __repr__(self) -> str:
        return "JSON"


_JSON_MARKER: Final = _JSONMarker()

#: The GraphQL `JSON` scalar: any JSON value (object, list, string, number, boolean, null),
#: sent as it is. As a hint it is `Any` for type checkers and pydantic.
JSON: TypeAlias = Annotated[Any, _JSON_MARKER]


# --- reading hints -------------------------------------------------------------------------


def _strip_wrappers(hint: Any) -> Any:
    """Removes `Annotated[...]` (other than `JSON`), `Required`/`NotRequired`/`ReadOnly` and
    NewTypes other than `ID` (any `NewType("ID", str)` is read as ours)."""
    while True:
        origin = typing.get_origin(hint)
        if origin is Annotated and _JSON_MARKER in hint.__metadata__:
            return JSON
        if origin is Annotated or getattr(origin, "_name", None) in _QUALIFIERS:
            hint = typing.get_args(hint)[0]
        elif hasattr(hint, "__supertype__"):
            if _is_id(hint):
                return ID
            hint = hint.__supertype__
        else:
            return hint


def _is_id(hint: Any) -> bool:
    """Ours, or another library's `ID = NewType("ID", str)` (Strawberry's `strawberry.ID`)."""
    return hint is ID or (getattr(hint, "__name__", None) == "ID" and hint.__supertype__ is str)


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
    (computed fields, dataclass fields with `init=False`); `output` is False for input-only
    ones (a pydantic field with `exclude=True`, which its serializer leaves out of results).

    `alias` is a pydantic field's serialization alias (from `alias`, `serialization_alias` or
    the model's `alias_generator`) when it differs from the Python name: results are
    serialized by alias, so it names the GraphQL output field and is the key the Rust core
    reads (`output_name`, `source_key`). `custom_serializer` marks a pydantic field with a
    `field_serializer`; `serialized_type` is that serializer's return type, when it declares
    one (`output_annotation`: the hint of the GraphQL output field).
    """

    python_name: str
    graphql_name: str
    annotation: Any
    description: str | None = None
    default: Any = MISSING
    omittable: bool = False
    settable: bool = True
    output: bool = True
    alias: str | None = None
    custom_serializer: bool = False
    serialized_type: Any = MISSING

    @property
    def output_annotation(self) -> Any:
        """The hint of the field as an output: what its serializer returns, else its own."""
        return self.annotation if self.serialized_type is MISSING else self.serialized_type

    @property
    def output_name(self) -> str:
        """The GraphQL name of the field as an output: its alias, else `graphql_name`."""
        return self.graphql_name if self.alias is None else self.alias

    @property
    def source_key(self) -> str:
        """The field's key in a result as JSON (`to_jsonable`): its alias, else its Python
        name."""
        return self.python_name if self.alias is None else self.alias

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
    for as_output in (False, True):  # input and output names
        seen: dict[str, str] = {}
        for spec in specs:
            name = spec.output_name if as_output else spec.graphql_name
            what = "field" if spec.alias is None or name != spec.alias else "field alias"
            check_graphql_name(name, f"{cls.__name__}: {what}")
            if name in seen:
                raise SubscriptionDefinitionError(
                    f"{cls.__name__}: fields {seen[name]!r} and {spec.python_name!r} "
                    f"both become {name!r} in GraphQL"
                )
            seen[name] = spec.python_name


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
    serialized = {
        field: _serializer_return_type(decorator)
        for decorator in model.__pydantic_decorators__.field_serializers.values()
        for field in decorator.info.fields
    }
    specs = []
    for name, info in model.model_fields.items():
        has_factory = info.default_factory is not None
        default = MISSING if info.is_required() or has_factory else info.default
        alias = info.serialization_alias
        # pydantic keeps a top-level Annotated's metadata apart from the annotation.
        annotation = JSON if _JSON_MARKER in info.metadata else info.annotation
        specs.append(
            FieldSpec(
                name,
                camel_case(name),
                annotation,
                info.description,
                default,
                omittable=has_factory,
                output=not info.exclude,
                alias=alias if alias and alias != name else None,
                custom_serializer=name in serialized,
                serialized_type=_serialized_type(annotation, serialized.get(name, MISSING)),
            )
        )
    for name, computed in model.model_computed_fields.items():
        hint = computed.return_type
        specs.append(
            FieldSpec(
                name,
                camel_case(name),
                hint,
                computed.description,
                settable=False,
                alias=computed.alias if computed.alias and computed.alias != name else None,
                custom_serializer=name in serialized,
                serialized_type=_serialized_type(hint, serialized.get(name, MISSING)),
            )
        )
    return tuple(specs)


def _serializer_return_type(decorator: Any) -> Any:
    """What a `field_serializer` says it returns (its `return_type=`, else its return
    annotation); MISSING when it says nothing (or `Any`) or the annotation cannot be read."""
    from pydantic_core import PydanticUndefined

    declared = decorator.info.return_type
    if declared is PydanticUndefined:
        try:
            hints = typing.get_type_hints(decorator.func, include_extras=True)
        except Exception:  # NameError, TypeError: keep the field's own type
            return MISSING
        declared = hints.get("return", MISSING)
    return MISSING if declared is Any else declared


def _serialized_type(annotation: Any, returned: Any) -> Any:
    """The output hint of a field whose serializer returns `returned`: nullable if the field
    is (a serializer may not run on None)."""
    if returned is MISSING or returned == annotation:
        return MISSING
    if split_optional(annotation)[1] and not split_optional(returned)[1]:
        return returned | None
    return returned


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
