"""Names and markers shared by the modules that turn Python into GraphQL: the `ID` hint, the
`MISSING` marker, Python names as GraphQL names (`camel_case`, `check_graphql_name`), and the
readable hint names and prefixes of error messages (`hint_name`, `error_context`). Classes keep
their name, fields and arguments are camelCased (`room_id` -> `roomId`, a trailing `_` as in
`type_` is dropped). Each GraphQL field records the Python name it comes from (`FieldSpec`, and
`extensions["python_name"]` on the graphql-core field).
"""

from __future__ import annotations

import contextlib
import enum
import re
import typing
from collections.abc import Iterator
from typing import Any, Final, NewType

from .errors import SubscriptionDefinitionError

__all__ = ["ID", "MISSING", "camel_case", "check_graphql_name", "error_context", "hint_name"]

#: The GraphQL `ID` scalar: serialized as a string, accepts strings and integers as input.
ID = NewType("ID", str)

_NAME_RE: Final = re.compile(r"[_A-Za-z][_0-9A-Za-z]*\Z")


class _Missing(enum.Enum):
    MISSING = enum.auto()

    def __repr__(self) -> str:
        return "MISSING"


#: Marks "no default value" (None is a legitimate default).
MISSING: Final = _Missing.MISSING


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
