"""The graphql-core internals this package relies on, the same on graphql-core 3.2 and 3.3.

Preparing a subscription needs three steps graphql-core only does inside `execute()`: coerce
the variables, collect the root fields (applying `@skip` / `@include` and fragments) and coerce
the root field's arguments. Their functions changed shape in 3.3 (variables coerced into a
`VariableValues` that records where each value came from, fragments as `FragmentDetails`,
fields as `FieldDetails`), and `collect_fields` is not public API. This module is the one place
that knows: it offers them with 3.2's signatures, and nothing else imports `graphql.execution`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

import graphql.execution.collect_fields as _collect_fields
import graphql.execution.values as _values
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    VariableDefinitionNode,
    version_info,
)

__all__ = [
    "GRAPHQL_CORE_3_3",
    "CoercedVariables",
    "collect_fields",
    "get_argument_values",
    "get_variable_values",
]

#: True on graphql-core 3.3 and later, False on 3.2.
GRAPHQL_CORE_3_3: Final = (version_info.major, version_info.minor) >= (3, 3)

# graphql-core 3.2's signatures, called untyped: mypy checks this module against 3.3.
_collect_fields_3_2: Any = _collect_fields.collect_fields
_get_variable_values_3_2: Any = _values.get_variable_values
_get_argument_values_3_2: Any = _values.get_argument_values


class CoercedVariables(dict[str, Any]):
    """The variables coerced by the GraphQL rules (defaults applied), by name, together with
    graphql-core's own record of them (`graphql_core_value`), which argument coercion reads."""

    __slots__ = ("graphql_core_value",)

    def __init__(self, values: Mapping[str, Any], graphql_core_value: Any) -> None:
        super().__init__(values)
        self.graphql_core_value = graphql_core_value


def get_variable_values(
    schema: GraphQLSchema,
    definitions: Collection[VariableDefinitionNode] | None,
    inputs: dict[str, Any],
    max_errors: int | None = None,
) -> CoercedVariables | list[GraphQLError]:
    """The operation's variables (`definitions`: None or empty when it declares none) coerced
    from `inputs` (defaults applied), or at most `max_errors` errors saying why they cannot be."""
    definitions = definitions or ()  # 3.3 leaves an operation without variables at None
    if not GRAPHQL_CORE_3_3:
        coerced_3_2 = _get_variable_values_3_2(schema, definitions, inputs, max_errors=max_errors)
        if isinstance(coerced_3_2, list):
            return coerced_3_2
        return CoercedVariables(coerced_3_2, coerced_3_2)
    coerced = _values.get_variable_values(schema, definitions, inputs, max_errors=max_errors)
    if isinstance(coerced, list):
        return coerced
    return CoercedVariables(coerced.coerced, coerced)


def collect_fields(
    schema: GraphQLSchema,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: CoercedVariables,
    runtime_type: GraphQLObjectType,
    operation: OperationDefinitionNode,
) -> dict[str, list[FieldNode]]:
    """The fields `operation` selects on `runtime_type`, by response key, after `@skip`,
    `@include` and fragments (in document order)."""
    if not GRAPHQL_CORE_3_3:
        fields_3_2: dict[str, list[FieldNode]] = _collect_fields_3_2(
            schema, dict(fragments), variables, runtime_type, operation.selection_set
        )
        return fields_3_2
    details = {
        name: _collect_fields.FragmentDetails(definition) for name, definition in fragments.items()
    }
    collected = _collect_fields.collect_fields(
        schema, details, variables.graphql_core_value, runtime_type, operation
    )
    return {
        key: [field.node for field in fields] for key, fields in collected.grouped_field_set.items()
    }


def get_argument_values(
    definition: GraphQLField, node: FieldNode, variables: CoercedVariables
) -> dict[str, Any]:
    """The field's arguments coerced (defaults applied, variables substituted); raises
    GraphQLError when one cannot be."""
    if not GRAPHQL_CORE_3_3:
        arguments_3_2: dict[str, Any] = _get_argument_values_3_2(definition, node, variables)
        return arguments_3_2
    return _values.get_argument_values(definition, node, variables.graphql_core_value)
