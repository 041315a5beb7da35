"""An application's own GraphQL schema with our subscriptions in it: `join_schema` checks that
the types both define match, and builds the one schema clients see, the application's Query and
Mutation types (run by its own resolvers) with our Subscription type.

A type of ours whose name the application's schema also has must match it (same kind, same
fields with the same types and arguments, same interfaces, members or values; descriptions
aside): the schema then holds the application's, and the Rust core shapes our results as ours
describes them, which is the same shape. The application's Subscription type, if it has one,
may only declare fields that `@subscription` resolvers serve, with the same types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    Undefined,
    ast_from_value,
    is_introspection_type,
    is_specified_scalar_type,
    print_type,
    value_from_ast,
)

from .errors import SubscriptionDefinitionError

__all__ = ["graphql_schema_of", "join_schema"]


def graphql_schema_of(schema: object) -> GraphQLSchema:
    """The graphql-core schema of `schema`: a `GraphQLSchema` (Ariadne's
    `make_executable_schema`, graphql-core's `build_schema`), or a Strawberry `Schema`."""
    if isinstance(schema, GraphQLSchema):
        return schema
    inner = getattr(schema, "_schema", None)  # strawberry.Schema keeps graphql-core's here
    if isinstance(inner, GraphQLSchema):
        return inner
    raise SubscriptionDefinitionError(
        f"schema= takes a graphql-core GraphQLSchema (or a Strawberry Schema); "
        f"got {type(schema).__name__}"
    )


def join_schema(
    ours: GraphQLSchema, existing: GraphQLSchema, owner: Callable[[str], str]
) -> GraphQLSchema:
    """The schema with `existing`'s types and root types, and our Subscription type.

    `ours` is the schema of our subscriptions alone; `owner(name)` names what one of our types
    was mapped from, for the error messages. Raises SubscriptionDefinitionError when a type of
    ours and one of `existing` share a name but differ, or when the result is not a valid
    schema."""
    _check_shared_types(ours, existing, owner)
    _check_subscription_fields(ours, existing)
    theirs = existing.subscription_type
    types = [
        named
        for named in existing.type_map.values()
        if named is not theirs and not is_introspection_type(named)
    ]
    try:
        joined = GraphQLSchema(
            query=existing.query_type,
            mutation=existing.mutation_type,
            subscription=_Retyped(existing.type_map).named(ours.subscription_type)
            if ours.subscription_type is not None
            else None,
            types=types,
            directives=existing.directives,
            description=existing.description,
            extensions=existing.extensions,
        )
    except TypeError as error:  # e.g. a type of theirs named Subscription
        raise SubscriptionDefinitionError(f"cannot add our subscriptions: {error}") from None
    return joined


class _Retyped:
    """Our types again, with the application's in place of ours of the same name (checked to
    match): the types that refer to them are rebuilt, the others are shared as they are."""

    def __init__(self, substitutes: Mapping[str, GraphQLNamedType]) -> None:
        self.substitutes = substitutes
        self._built: dict[str, GraphQLNamedType] = {}

    def retype(self, type_: Any) -> Any:
        if isinstance(type_, (GraphQLNonNull, GraphQLList)):
            return type(type_)(self.retype(type_.of_type))
        return self.named(type_)

    def named(self, named: Any) -> Any:
        substitute = self.substitutes.get(named.name)
        if substitute is not None and not is_specified_scalar_type(named):
            return substitute
        if named.name in self._built:
            return self._built[named.name]
        built = named  # enums and scalars refer to no other type
        kwargs = named.to_kwargs()
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
            kwargs["fields"] = lambda: {n: self._field(f) for n, f in named.fields.items()}
            kwargs["interfaces"] = lambda: [self.named(i) for i in named.interfaces]
            built = type(named)(**kwargs)
        elif isinstance(named, GraphQLUnionType):
            kwargs["types"] = lambda: [self.named(member) for member in named.types]
            built = GraphQLUnionType(**kwargs)
        elif isinstance(named, GraphQLInputObjectType):
            kwargs["fields"] = lambda: {
                n: GraphQLInputField(**self._input_value(f)) for n, f in named.fields.items()
            }
            built = GraphQLInputObjectType(**kwargs)
        self._built[named.name] = built
        return built

    def _field(self, field: GraphQLField) -> GraphQLField:
        args = {n: GraphQLArgument(**self._input_value(a)) for n, a in field.args.items()}
        return GraphQLField(**{**field.to_kwargs(), "type_": self.retype(field.type), "args": args})

    def _input_value(self, value: GraphQLArgument | GraphQLInputField) -> dict[str, Any]:
        """An argument's or input field's definition with its type, and default, retyped: the
        default in the application's internal form (an enum's value, say) instead of ours."""
        kwargs: dict[str, Any] = dict(value.to_kwargs())
        kwargs["type_"] = self.retype(value.type)
        if value.default_value is not Undefined:
            literal = ast_from_value(value.default_value, value.type)
            default = Undefined if literal is None else value_from_ast(literal, kwargs["type_"])
            if default is Undefined:
                raise SubscriptionDefinitionError(
                    f"default value {value.default_value!r} is not a valid {kwargs['type_']} "
                    f"of the existing schema"
                )
            kwargs["default_value"] = default
        return kwargs


def _check_shared_types(
    ours: GraphQLSchema, existing: GraphQLSchema, owner: Callable[[str], str]
) -> None:
    roots = (ours.query_type, ours.subscription_type)
    for name, our_type in ours.type_map.items():
        their_type = existing.type_map.get(name)
        if (
            their_type is None
            or our_type in roots
            or is_introspection_type(our_type)
            or is_specified_scalar_type(our_type)
        ):
            continue
        difference = _difference(our_type, their_type)
        if difference is not None:
            raise SubscriptionDefinitionError(
                f"type {name!r} is defined twice, and differently: the existing schema has\n"
                f"{print_type(their_type)}\n{owner(name)} maps to\n{print_type(our_type)}\n"
                f"({difference}); make them match, or rename one of them"
            )


def _check_subscription_fields(ours: GraphQLSchema, existing: GraphQLSchema) -> None:
    theirs = existing.subscription_type
    if theirs is None:
        return
    served = ours.subscription_type.fields if ours.subscription_type is not None else {}
    for name, their_field in theirs.fields.items():
        our_field = served.get(name)
        if our_field is None:
            raise SubscriptionDefinitionError(
                f"the existing schema's {theirs.name}.{name} is served by no @subscription: "
                f"declare it with @subscription (an async generator works as it is), or "
                f"remove it from that schema"
            )
        if _signature(our_field) != _signature(their_field):
            raise SubscriptionDefinitionError(
                f"{theirs.name}.{name} is {name}{_signature(their_field)} in the existing schema "
                f"but {name}{_signature(our_field)} as a @subscription"
            )


def _difference(ours: GraphQLNamedType, theirs: GraphQLNamedType) -> str | None:
    """Why two types of one name do not match, or None when they do."""
    kind, their_kind = _kind(ours), _kind(theirs)
    if kind != their_kind:
        return f"one is {their_kind}, the other {kind}"
    if isinstance(ours, (GraphQLObjectType, GraphQLInterfaceType)):
        assert isinstance(theirs, (GraphQLObjectType, GraphQLInterfaceType))
        interfaces = _difference_of(
            "interfaces",
            {i.name: "" for i in theirs.interfaces},
            {i.name: "" for i in ours.interfaces},
        )
        fields = _difference_of(
            "fields",
            {name: _signature(field) for name, field in theirs.fields.items()},
            {name: _signature(field) for name, field in ours.fields.items()},
        )
        return interfaces or fields
    if isinstance(ours, GraphQLInputObjectType):
        assert isinstance(theirs, GraphQLInputObjectType)
        return _difference_of(
            "fields",
            {name: f": {field.type}" for name, field in theirs.fields.items()},
            {name: f": {field.type}" for name, field in ours.fields.items()},
        )
    if isinstance(ours, GraphQLUnionType):
        assert isinstance(theirs, GraphQLUnionType)
        return _difference_of(
            "members", {t.name: "" for t in theirs.types}, {t.name: "" for t in ours.types}
        )
    if isinstance(ours, GraphQLEnumType):
        assert isinstance(theirs, GraphQLEnumType)
        values = dict.fromkeys(theirs.values, ""), dict.fromkeys(ours.values, "")
        return _difference_of("values", *values)
    return None  # scalars: the name is the contract


def _difference_of(what: str, theirs: Mapping[str, str], ours: Mapping[str, str]) -> str | None:
    """What differs between two named lists, as `name: signature` entries."""
    only_theirs = [name + theirs[name] for name in theirs if name not in ours]
    only_ours = [name + ours[name] for name in ours if name not in theirs]
    changed = [
        f"{name}{ours[name]} in ours, {name}{theirs[name]} in the existing schema"
        for name in ours
        if name in theirs and ours[name] != theirs[name]
    ]
    parts = []
    if only_theirs:
        parts.append(f"{what} only in the existing schema: {', '.join(only_theirs)}")
    if only_ours:
        parts.append(f"{what} only in ours: {', '.join(only_ours)}")
    if changed:
        parts.append(f"{what} that differ: {', '.join(changed)}")
    return "; ".join(parts) or None


def _signature(field: GraphQLField) -> str:
    """A field's arguments and type as SDL: `(roomId: String!): Message`."""
    args = ", ".join(f"{name}: {arg.type}" for name, arg in field.args.items())
    return f"({args}): {field.type}" if args else f": {field.type}"


def _kind(named: Any) -> str:
    kinds = (
        (GraphQLObjectType, "an object type"),
        (GraphQLInterfaceType, "an interface"),
        (GraphQLUnionType, "a union"),
        (GraphQLEnumType, "an enum"),
        (GraphQLInputObjectType, "an input type"),
        (GraphQLScalarType, "a scalar"),
    )
    return next((kind for cls, kind in kinds if isinstance(named, cls)), type(named).__name__)
