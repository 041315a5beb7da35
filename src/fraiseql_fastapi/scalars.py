"""The custom GraphQL scalars and the enums made from Python: `UUID`, `DateTime`, `Date`, `Time`
and `Decimal` (`GraphQLUUID`, `GraphQLDateTime`, `GraphQLDate`, `GraphQLTime`,
`GraphQLDecimal`), each carried as a string (ISO 8601 for the dates and times, the exact digits
for decimals), `JSON` (`GraphQLJSON`, any JSON value, sent as it is), and `PythonEnumType`, a
GraphQL enum whose values are a Python Enum's member names, with
`enum_member` to find the member a value stands for.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import Callable
from typing import Any, Final

from graphql import (
    FloatValueNode,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLError,
    GraphQLScalarType,
    IntValueNode,
    StringValueNode,
    ValueNode,
    print_ast,
    value_from_ast_untyped,
)
from graphql.pyutils import inspect as inspect_value

from .errors import SubscriptionDefinitionError
from .hints import class_description
from .names import check_graphql_name

__all__ = [
    "GraphQLDate",
    "GraphQLDateTime",
    "GraphQLDecimal",
    "GraphQLJSON",
    "GraphQLTime",
    "GraphQLUUID",
    "PythonEnumType",
    "enum_member",
]

# --- scalars -------------------------------------------------------------------------------


def _parse_datetime(text: str) -> datetime.datetime:
    # Python 3.10's fromisoformat does not read the "Z" suffix.
    return datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _parse_time(text: str) -> datetime.time:
    # As for datetimes: Python 3.10 does not read "Z".
    return datetime.time.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _parse_decimal(value: Any) -> decimal.Decimal:
    """A finite Decimal from a string, an int or a float (floats by their shortest repr, so
    0.1 is Decimal("0.1")); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, decimal.Decimal)):
        raise ValueError(value)
    try:
        result = decimal.Decimal(value if isinstance(value, (str, int)) else str(value))
    except decimal.InvalidOperation:
        raise ValueError(value) from None
    if not result.is_finite():
        raise ValueError(value)
    return result


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

#: `datetime.time`, as an ISO 8601 string ("12:30:00", "12:30:00.5+02:00"; "Z" is accepted).
GraphQLTime: Final = _string_scalar(
    "Time",
    "An ISO 8601 time of day, e.g. 12:30:00 or 12:30:00+02:00.",
    datetime.time,
    _parse_time,
    "https://datatracker.ietf.org/doc/html/rfc3339",
)


def _decimal_serialize(value: Any) -> str:
    try:
        return str(_parse_decimal(value))
    except ValueError:
        raise GraphQLError(f"Decimal cannot represent value: {inspect_value(value)}") from None


def _decimal_parse_value(value: Any) -> decimal.Decimal:
    try:
        return _parse_decimal(value)
    except ValueError:
        raise GraphQLError(f"Decimal cannot represent value: {inspect_value(value)}") from None


def _decimal_parse_literal(node: ValueNode, _variables: Any = None) -> decimal.Decimal:
    if isinstance(node, (StringValueNode, IntValueNode, FloatValueNode)):
        try:
            return _parse_decimal(node.value)
        except ValueError:
            pass
    raise GraphQLError(f"Decimal cannot represent value: {print_ast(node)}", node)


#: `decimal.Decimal`, as a string of its exact digits ("1.10"); strings, ints and floats are
#: accepted as input. Only finite values.
GraphQLDecimal: Final = GraphQLScalarType(
    "Decimal",
    serialize=_decimal_serialize,
    parse_value=_decimal_parse_value,
    parse_literal=_decimal_parse_literal,
    description="A decimal number, as a string of its exact digits, e.g. 1.10 (an Int or a "
    "Float is accepted as input).",
)


def _json_parse_literal(node: ValueNode, variables: Any = None) -> Any:
    return value_from_ast_untyped(node, variables)


#: `JSON`: any JSON value, as it is.
GraphQLJSON: Final = GraphQLScalarType(
    "JSON",
    serialize=lambda value: value,
    parse_value=lambda value: value,
    parse_literal=_json_parse_literal,
    description="Any JSON value: an object, a list, a string, a number, a boolean or null.",
    specified_by_url="https://www.rfc-editor.org/rfc/rfc8259",
)

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
