"""How deep and how large an operation may be: a graphql-core validation rule.

Depth is the longest chain of nested fields (the root fields are level 1); size is the number
of fields with every fragment spread counted where it is used, so a document that multiplies
a fragment cannot hide its size. Each fragment is measured once (a spread repeated at every
level costs nothing more to check), and a fragment cycle (which graphql-core's
`NoFragmentCyclesRule` reports) counts as nothing.
"""

from __future__ import annotations

import collections
import sys
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

from .limits import Limit

__all__ = ["query_limits_rule"]


def query_limits_rule(
    max_depth: int | None, max_fields: int | None, limited: collections.Counter[str]
) -> type[ValidationRule]:
    """The rule refusing operations deeper than `max_depth` (QUERY_TOO_DEEP) or with more than
    `max_fields` fields (QUERY_TOO_LARGE); each refusal counted in `limited`."""

    class QueryLimitsRule(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            measure = _Measure(node)
            for definition in node.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                try:
                    depth, fields = measure.selections(definition.selection_set)
                except RecursionError:  # fragments nested past what Python can follow
                    depth = fields = sys.getrecursionlimit()
                if max_depth is not None and depth > max_depth:
                    limited[Limit.QUERY_DEPTH.value] += 1
                    self.report_error(
                        GraphQLError(
                            f"The operation is {depth} fields deep; at most {max_depth}"
                            " are allowed.",
                            definition,
                            extensions={"code": "QUERY_TOO_DEEP"},
                        )
                    )
                if max_fields is not None and fields > max_fields:
                    limited[Limit.QUERY_FIELDS.value] += 1
                    self.report_error(
                        GraphQLError(
                            f"The operation has {fields} fields; at most {max_fields} are allowed.",
                            definition,
                            extensions={"code": "QUERY_TOO_LARGE"},
                        )
                    )

    return QueryLimitsRule


class _Measure:
    """Depth and size of selection sets, each fragment measured once."""

    def __init__(self, document: DocumentNode) -> None:
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._measured: dict[str, tuple[int, int]] = {}
        self._measuring: set[str] = set()

    def selections(self, selection_set: SelectionSetNode | None) -> tuple[int, int]:
        """(depth, fields) below `selection_set`."""
        if selection_set is None:
            return 0, 0
        depth = fields = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                below, inside = self.selections(selection.selection_set)
                depth, fields = max(depth, below + 1), fields + 1 + inside
            elif isinstance(selection, FragmentSpreadNode):
                below, inside = self._fragment(selection.name.value)
                depth, fields = max(depth, below), fields + inside
            elif isinstance(selection, InlineFragmentNode):
                below, inside = self.selections(selection.selection_set)
                depth, fields = max(depth, below), fields + inside
        return depth, fields

    def _fragment(self, name: str) -> tuple[int, int]:
        measured = self._measured.get(name)
        if measured is not None:
            return measured
        fragment = self._fragments.get(name)
        if fragment is None or name in self._measuring:  # unknown, or a cycle: reported apart
            return 0, 0
        self._measuring.add(name)
        measured = self._measured[name] = self.selections(fragment.selection_set)
        self._measuring.discard(name)
        return measured
