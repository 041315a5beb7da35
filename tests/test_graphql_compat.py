"""The graphql-core wrappers behave the same on graphql-core 3.3 (.venv) and 3.2 (scripts/test
runs this module again with FRAISEQL_GRAPHQL_CORE=3.2 and 3.2 first on PYTHONPATH)."""

from __future__ import annotations

import os
from typing import Any

import graphql
import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLObjectType,
    OperationDefinitionNode,
    build_schema,
    parse,
)

from fraiseql_fastapi.graphql_compat import (
    GRAPHQL_CORE_3_3,
    CoercedVariables,
    collect_fields,
    get_argument_values,
    get_variable_values,
)

SCHEMA = build_schema(
    """
    input Range { low: Int = 0, high: Int }
    type Query {
      room(id: ID!, limit: Int = 10, range: Range): String
      rooms(first: Int): [String]
      version: String
    }
    """
)
QUERY_TYPE = SCHEMA.query_type
assert isinstance(QUERY_TYPE, GraphQLObjectType)


def operation_of(source: str) -> tuple[OperationDefinitionNode, dict[str, FragmentDefinitionNode]]:
    document = parse(source)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return operation, fragments


def coerced(operation: OperationDefinitionNode, inputs: dict[str, Any]) -> CoercedVariables:
    variables = get_variable_values(SCHEMA, operation.variable_definitions, inputs)
    assert isinstance(variables, CoercedVariables), variables
    return variables


def test_the_version_switch_follows_the_installed_graphql_core() -> None:
    expected = os.environ.get("FRAISEQL_GRAPHQL_CORE", "3.3")  # scripts/test sets 3.2
    assert graphql.version.startswith(f"{expected}.")
    assert GRAPHQL_CORE_3_3 is (expected == "3.3")


def test_variables_are_coerced_with_their_defaults() -> None:
    operation, _ = operation_of("query ($id: ID!, $n: Int = 3, $r: Range) { room(id: $id) }")
    variables = coerced(operation, {"id": 42, "r": {"high": 5}})
    assert variables == {"id": "42", "n": 3, "r": {"low": 0, "high": 5}}
    assert isinstance(variables, dict)


def test_invalid_variables_come_back_as_errors_up_to_max_errors() -> None:
    operation, _ = operation_of("query ($id: ID!, $n: Int, $m: Int) { room(id: $id) }")
    errors = get_variable_values(
        SCHEMA, operation.variable_definitions, {"n": "x", "m": "y"}, max_errors=2
    )
    assert isinstance(errors, list)
    assert all(isinstance(error, GraphQLError) for error in errors)
    assert [error.message.split("'")[1] for error in errors[:2]] == ["$id", "$n"]
    assert errors[2].message.startswith("Too many errors processing variables")
    one = get_variable_values(SCHEMA, operation.variable_definitions, {"id": None})
    assert isinstance(one, list)
    assert len(one) == 1  # the wording differs between 3.2 and 3.3
    assert "'$id'" in one[0].message and "'ID!'" in one[0].message


def test_fields_are_collected_through_fragments_skip_and_include() -> None:
    operation, fragments = operation_of(
        """
        query ($hide: Boolean!, $show: Boolean!) {
          first: room(id: 1)
          ...More
          version @skip(if: $hide)
          rooms @include(if: $show)
          first: room(id: 1)
        }
        fragment More on Query { second: room(id: 2) version }
        """
    )
    variables = coerced(operation, {"hide": True, "show": False})
    fields = collect_fields(SCHEMA, fragments, variables, QUERY_TYPE, operation)
    assert list(fields) == ["first", "second", "version"]
    assert all(isinstance(node, FieldNode) for nodes in fields.values() for node in nodes)
    assert [node.name.value for node in fields["first"]] == ["room", "room"]
    assert fields["version"][0] is fragments["More"].selection_set.selections[1]
    shown = collect_fields(
        SCHEMA, fragments, coerced(operation, {"hide": False, "show": True}), QUERY_TYPE, operation
    )
    assert list(shown) == ["first", "second", "version", "rooms"]


def test_arguments_are_coerced_with_variables_and_defaults() -> None:
    operation, fragments = operation_of(
        "query ($id: ID!, $high: Int, $limit: Int) "
        "{ room(id: $id, limit: $limit, range: {high: $high}) }"
    )
    field = QUERY_TYPE.fields["room"]
    fields = collect_fields(SCHEMA, fragments, coerced(operation, {"id": 1}), QUERY_TYPE, operation)
    room = fields["room"][0]
    assert get_argument_values(field, room, coerced(operation, {"id": 7, "high": 9})) == {
        "id": "7",
        "limit": 10,  # $limit absent: the argument's default
        "range": {"low": 0, "high": 9},
    }
    assert get_argument_values(field, room, coerced(operation, {"id": "a", "limit": 2})) == {
        "id": "a",
        "limit": 2,
        "range": {"low": 0},  # $high absent: the field is left out
    }


def test_an_operation_without_variables_has_none() -> None:
    operation, fragments = operation_of("{ version }")
    variables = coerced(operation, {})
    assert variables == {}
    assert list(collect_fields(SCHEMA, fragments, variables, QUERY_TYPE, operation)) == ["version"]


def test_an_argument_that_cannot_be_coerced_raises_graphql_error() -> None:
    operation, fragments = operation_of("{ room(limit: 1) }")  # id missing: validation's job
    variables = coerced(operation, {})
    room = collect_fields(SCHEMA, fragments, variables, QUERY_TYPE, operation)["room"][0]
    with pytest.raises(GraphQLError, match="'id'"):
        get_argument_values(QUERY_TYPE.fields["room"], room, variables)
