"""The GraphQL schema built from `@subscription` resolvers (graphql-core), and the preparation
of operations against it.

`SubscriptionSchema` gives:
- `prepare(query, operation_name, variables)`: parse and validate (valid documents are cached
  by text), pick the operation, coerce variables; for a subscription, the root field, its
  coerced arguments and the resolver's keyword arguments. Failures come back as a list of
  `GraphQLError`s (`error.formatted` is the spec's shape), never as exceptions.
- `execute(prepared)`: runs a query (introspection included) with graphql-core.
- `print_schema()`: the SDL.
- `core_type_info()`: the output types reachable from `Subscription`, described for the Rust
  core, which shapes every response itself (graphql-core never resolves subscription fields).

Alone, the schema's `Query` type (GraphQL requires one, with at least one field) has
`_subscriptions: [String!]!`, the names of the subscription fields, besides any `query_fields`
given. With an application's own schema (`schema=`: graphql-core's, Ariadne's or Strawberry's),
clients see that schema's Query and Mutation types with our Subscription type (see
`fraiseql_fastapi.existing_schema`); subscriptions are still coerced and described by our own
types, which match.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from inspect import isawaitable
from typing import Any, Final, Literal

from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLString,
    GraphQLUnionType,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    execute,
    get_named_type,
    is_specified_scalar_type,
    parse,
    print_schema,
    specified_rules,
    validate,
    validate_schema,
)

from .conversion import from_graphql_args, to_jsonable
from .errors import SubscriptionDefinitionError
from .existing_schema import graphql_schema_of, join_schema
from .field import SubscriptionField
from .graphql_compat import (
    CoercedVariables,
    collect_fields,
    get_argument_values,
    get_variable_values,
)
from .names import error_context
from .query_limits import query_limits_rule
from .type_mapping import TypeMapper

__all__ = ["OperationKind", "PreparedOperation", "SubscriptionSchema"]

OperationKind = Literal["query", "mutation", "subscription"]

#: The Query field every schema has (GraphQL needs at least one Query field).
SUBSCRIPTIONS_QUERY_FIELD: Final = "_subscriptions"
#: Names no Python class may take: the root types and the scalars this package defines.
RESERVED_TYPE_NAMES: Final = (
    "Query",
    "Mutation",
    "Subscription",
    "String",
    "Int",
    "Float",
    "Boolean",
    "ID",
    "UUID",
    "DateTime",
    "Date",
    "Time",
    "Decimal",
    "JSON",
)
#: The validation rules when introspection is off (`introspection=False`).
_WITHOUT_INTROSPECTION: Final = (*specified_rules, NoSchemaIntrospectionCustomRule)
#: Coercion errors reported per request at most (as graphql-core's `execute`).
MAX_COERCION_ERRORS: Final = 50


@dataclasses.dataclass(frozen=True)
class PreparedOperation:
    """A validated operation with coerced variables, ready to execute or subscribe.

    For a subscription, also its one root field: the `SubscriptionField`, the field node,
    `args` (graphql-core's coerced argument values, keyed by GraphQL names), `resolver_args`
    (the resolver's keyword arguments, by Python name) and `response_key` (the alias or name
    under which the result is sent).
    """

    kind: OperationKind
    #: The document text, as sent.
    query: str
    document: DocumentNode
    operation: OperationDefinitionNode
    #: The variables as sent.
    variables: Mapping[str, Any]
    #: The variables coerced by the GraphQL rules (defaults applied).
    variable_values: CoercedVariables
    field: SubscriptionField | None = None
    field_node: FieldNode | None = None
    args: dict[str, Any] | None = None
    resolver_args: dict[str, Any] | None = None
    response_key: str | None = None

    @property
    def operation_name(self) -> str | None:
        """The name of the chosen operation (None if anonymous)."""
        return self.operation.name.value if self.operation.name else None

    @property
    def variables_json(self) -> dict[str, Any]:
        """The coerced variables as JSON (enums as names, datetimes and UUIDs as strings)."""
        return {name: to_jsonable(value) for name, value in self.variable_values.items()}


class SubscriptionSchema:
    """A GraphQL schema whose Subscription type holds the given `@subscription` fields.

    The Subscription fields are there for validation and introspection; their values come
    from the resolvers via the Rust core. `schema` is the application's own schema (its
    queries and mutations run by graphql-core with its resolvers), which our Subscription type
    joins; without one, `query_fields` are added to our `Query`. `introspection=False` refuses
    `__schema` and `__type` (for production); `max_query_depth` and `max_query_fields` refuse
    larger operations (see `fraiseql_fastapi.query_limits`), counted in `limited`. Raises
    SubscriptionDefinitionError when a type cannot be mapped, differs from the application's
    type of the same name, or the schema is invalid.
    """

    def __init__(
        self,
        fields: Iterable[SubscriptionField] = (),
        *,
        schema: object = None,
        introspection: bool = True,
        query_fields: Mapping[str, GraphQLField] | None = None,
        document_cache_size: int = 1000,
        max_query_depth: int | None = None,
        max_query_fields: int | None = None,
        limited: collections.Counter[str] | None = None,
    ) -> None:
        self.fields: dict[str, SubscriptionField] = _by_name(fields)
        self._mapper = TypeMapper(reserved_names=RESERVED_TYPE_NAMES)
        #: Our subscriptions alone: what their arguments are coerced by and the core is told.
        self.subscription_schema: GraphQLSchema = self._checked(
            GraphQLSchema,
            query=self._query_type(query_fields or {}),
            subscription=self._subscription_type(self._mapper),
        )
        #: The schema clients see: ours, or the application's with our Subscription type.
        self.graphql_schema: GraphQLSchema = self.subscription_schema
        if schema is not None:
            self.graphql_schema = self._checked(
                join_schema, self.subscription_schema, graphql_schema_of(schema), self._mapper.owner
            )
        rules: tuple[type[ASTValidationRule], ...] = tuple(
            specified_rules if introspection else _WITHOUT_INTROSPECTION
        )
        if max_query_depth is not None or max_query_fields is not None:
            counter = collections.Counter[str]() if limited is None else limited
            rules = (*rules, query_limits_rule(max_query_depth, max_query_fields, counter))
        self._rules = rules
        self._documents: collections.OrderedDict[str, DocumentNode] = collections.OrderedDict()
        self._document_cache_size = document_cache_size

    # --- building --------------------------------------------------------------------------

    def _checked(
        self, build: Callable[..., GraphQLSchema], *args: Any, **kwargs: Any
    ) -> GraphQLSchema:
        """The schema `build` returns, raising SubscriptionDefinitionError if it is invalid."""
        try:
            schema = build(*args, **kwargs)
        except SubscriptionDefinitionError:
            raise
        except TypeError as error:  # e.g. two types with one name among the query_fields
            raise SubscriptionDefinitionError(f"invalid schema: {error}") from None
        errors = validate_schema(schema)
        if errors:
            names = ", ".join(field.python_name for field in self.fields.values())
            messages = "; ".join(error.message for error in errors)
            raise SubscriptionDefinitionError(f"{names}: invalid schema: {messages}")
        return schema

    def _subscription_type(self, mapper: TypeMapper) -> GraphQLObjectType | None:
        if not self.fields:
            return None
        return GraphQLObjectType(
            "Subscription", {name: self._field(f, mapper) for name, f in self.fields.items()}
        )

    def _field(self, field: SubscriptionField, mapper: TypeMapper) -> GraphQLField:
        with error_context(field.python_name):
            with error_context("return type"):
                type_ = mapper.output_type(field.return_annotation)
            args = {}
            for spec in field.arguments:
                with error_context(f"parameter {spec.python_name!r}"):
                    args[spec.graphql_name] = mapper.argument(spec)
        return GraphQLField(
            type_,
            args,
            description=field.description,
            extensions={"python_name": field.python_name},
        )

    def _query_type(self, query_fields: Mapping[str, GraphQLField]) -> GraphQLObjectType:
        if SUBSCRIPTIONS_QUERY_FIELD in query_fields:
            raise SubscriptionDefinitionError(
                f"query field {SUBSCRIPTIONS_QUERY_FIELD!r} is reserved"
            )
        names = list(self.fields)

        def resolve_names(_root: Any, _info: GraphQLResolveInfo[Any]) -> list[str]:
            return names

        listing = GraphQLField(
            GraphQLNonNull(GraphQLList(GraphQLNonNull(GraphQLString))),
            resolve=resolve_names,
            description="The names of the subscription fields this server offers.",
        )
        return GraphQLObjectType("Query", {SUBSCRIPTIONS_QUERY_FIELD: listing, **query_fields})

    # --- operations ------------------------------------------------------------------------

    def prepare(
        self,
        query: str,
        operation_name: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> PreparedOperation | list[GraphQLError]:
        """Parses and validates `query`, selects the operation (by `operation_name` when the
        document has several), coerces `variables`; for a subscription, also resolves its
        root field and arguments. Returns the prepared operation or the errors."""
        document = self.document(query)
        if isinstance(document, list):
            return document
        operation = select_operation(document, operation_name)
        if isinstance(operation, GraphQLError):
            return [operation]
        kind: OperationKind = operation.operation.value
        if self.graphql_schema.get_root_type(operation.operation) is None:
            return [
                GraphQLError(f"Schema is not configured to execute {kind} operation.", operation)
            ]
        if variables is not None and not isinstance(variables, Mapping):
            return [GraphQLError("Variables must be provided as an object of variable values.")]
        raw = dict(variables or {})
        # A subscription's variables are all used by our fields' arguments (or @skip/@include):
        # coerced by our own types, whose Python conversions expect what they produce.
        schema = self.subscription_schema if kind == "subscription" else self.graphql_schema
        coerced = get_variable_values(
            schema,
            operation.variable_definitions,
            raw,
            max_errors=MAX_COERCION_ERRORS,
        )
        if isinstance(coerced, list):
            return coerced
        prepared = PreparedOperation(kind, query, document, operation, raw, coerced)
        return self._prepare_subscription(prepared) if kind == "subscription" else prepared

    def document(self, query: str) -> DocumentNode | list[GraphQLError]:
        """The parsed and validated document, or its syntax or validation errors. Valid
        documents are cached by text (least recently used first out)."""
        cached = self._documents.get(query)
        if cached is not None:
            self._documents.move_to_end(query)
            return cached
        try:
            document = parse(query)
        except GraphQLError as error:
            return [error]
        try:
            errors = validate(self.graphql_schema, document, self._rules)
        except GraphQLError as error:  # e.g. @skip(if: $var) on a subscription's root field
            return [error]
        if errors:
            return errors
        self._documents[query] = document
        if len(self._documents) > self._document_cache_size:
            self._documents.popitem(last=False)
        return document

    def _prepare_subscription(
        self, prepared: PreparedOperation
    ) -> PreparedOperation | list[GraphQLError]:
        schema = self.subscription_schema
        subscription_type = schema.subscription_type
        assert subscription_type is not None  # checked by prepare()
        fragments = {
            definition.name.value: definition
            for definition in prepared.document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        root_fields = collect_fields(
            schema,
            fragments,
            prepared.variable_values,
            subscription_type,
            prepared.operation,
        )
        if not root_fields:  # every root field skipped by @skip / @include
            return [GraphQLError("The subscription selects no field.", prepared.operation)]
        response_key, field_nodes = next(iter(root_fields.items()))
        field_node = field_nodes[0]
        definition = subscription_type.fields[field_node.name.value]
        field = self.fields[field_node.name.value]
        try:
            args = get_argument_values(definition, field_node, prepared.variable_values)
            resolver_args = from_graphql_args(field, args)
        except GraphQLError as error:
            return [error]
        except (ValueError, TypeError, KeyError) as error:  # refused by a model's validation
            message = f"Invalid arguments for field '{field.name}': {error}"
            return [GraphQLError(message, field_node)]
        # Built directly: `dataclasses.replace` costs several times more, on every subscribe.
        return PreparedOperation(
            kind=prepared.kind,
            query=prepared.query,
            document=prepared.document,
            operation=prepared.operation,
            variables=prepared.variables,
            variable_values=prepared.variable_values,
            field=field,
            field_node=field_node,
            args=args,
            resolver_args=resolver_args,
            response_key=response_key,
        )

    async def execute(
        self,
        prepared: PreparedOperation,
        context_value: Any = None,
        *,
        root_value: Any = None,
    ) -> ExecutionResult:
        """Executes a prepared query with graphql-core (awaiting async resolvers).
        Subscriptions are not executed here: the manager registers them with the Rust core."""
        if prepared.kind == "subscription":
            raise ValueError("execute() runs queries; subscriptions are dispatched by the manager")
        result = execute(
            self.graphql_schema,
            prepared.document,
            root_value=root_value,
            context_value=context_value,
            variable_values=dict(prepared.variables),
            operation_name=prepared.operation_name,
        )
        return await result if isawaitable(result) else result

    # --- descriptions ----------------------------------------------------------------------

    def print_schema(self) -> str:
        """The schema in SDL."""
        return print_schema(self.graphql_schema)

    def core_type_info(self) -> dict[str, Any]:
        """The output types reachable from Subscription, for the Rust core:
        `{"subscription_type": "Subscription", "types": {name: description}}`, where a
        description is `{"kind": "OBJECT" | "INTERFACE", "fields": {graphql_name: {"type":
        SDL type reference, "source": key in the resolver's JSON}}}` (interfaces also
        `"possible_types"`), `{"kind": "UNION", "possible_types": [...]}`, `{"kind": "ENUM",
        "values": [...]}` or `{"kind": "SCALAR"}`. Built-in scalars are not listed."""
        schema = self.subscription_schema
        root = schema.subscription_type
        return {
            "subscription_type": root.name if root else None,
            "types": _describe_reachable(schema, root) if root else {},
        }


def select_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | GraphQLError:
    """The operation to run, by the rules of GraphQL's GetOperation: the named one, or the
    only one when no name is given."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if len(operations) == 1:
            return operations[0]
        if not operations:
            return GraphQLError("Must provide an operation.")
        return GraphQLError("Must provide operation name if query contains multiple operations.")
    for operation in operations:
        if operation.name and operation.name.value == operation_name:
            return operation
    return GraphQLError(f"Unknown operation named '{operation_name}'.")


def _by_name(fields: Iterable[SubscriptionField]) -> dict[str, SubscriptionField]:
    by_name: dict[str, SubscriptionField] = {}
    for field in fields:
        if field.name in by_name and by_name[field.name] is not field:
            raise SubscriptionDefinitionError(
                f"{field.python_name}: a subscription named {field.name!r} is already "
                f"defined by {by_name[field.name].python_name}"
            )
        by_name[field.name] = field
    return by_name


def _describe_reachable(schema: GraphQLSchema, root: GraphQLNamedType) -> dict[str, Any]:
    """Describes `root` and every named output type reachable from it (breadth first)."""
    described: dict[str, Any] = {}
    pending = collections.deque([root])
    while pending:
        named = pending.popleft()
        if named.name in described or is_specified_scalar_type(named):
            continue
        description, references = _describe(schema, named)
        described[named.name] = description
        pending.extend(references)
    return described


def _describe(
    schema: GraphQLSchema, named: GraphQLNamedType
) -> tuple[dict[str, Any], list[GraphQLNamedType]]:
    """One type's description and the named types it refers to."""
    if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
        fields = {
            name: {"type": str(field.type), "source": _source_key(name, field)}
            for name, field in named.fields.items()
        }
        references = [get_named_type(field.type) for field in named.fields.values()]
        if isinstance(named, GraphQLObjectType):
            return {"kind": "OBJECT", "fields": fields}, references
        possible = list(schema.get_possible_types(named))
        description = {"kind": "INTERFACE", "fields": fields, "possible_types": _names(possible)}
        return description, [*references, *possible]
    if isinstance(named, GraphQLUnionType):
        return {"kind": "UNION", "possible_types": _names(named.types)}, list(named.types)
    if isinstance(named, GraphQLEnumType):
        return {"kind": "ENUM", "values": list(named.values)}, []
    return {"kind": "SCALAR"}, []


def _source_key(name: str, field: GraphQLField) -> str:
    extensions = field.extensions
    return str(extensions.get("source_key", extensions.get("python_name", name)))


def _names(types: Iterable[GraphQLNamedType]) -> list[str]:
    return [named.name for named in types]
