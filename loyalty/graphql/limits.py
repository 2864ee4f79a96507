"""Refuse documents whose validation would cost more than a few milliseconds.

Validation (overlapping-field checks above all) grows with the fields a document selects once
its fragments are expanded, and fragments that spread each other twice double that count per
level: an 800-byte document can select 2^20 fields. So the expanded count is computed first,
in time linear in the document's size, and a document over the limit never reaches the
validation rules.
"""

from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import ValidationCache

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
OPERATION_NAME_REQUIRED = "OPERATION_NAME_REQUIRED"


MAX_SAME_NAME_PAIRS = 500
"""Pairs of fields sharing a response name in one selection set, summed over the document.

The overlapping-fields rule compares every such pair (400 repetitions of ``program { name }``
are 80,000 pairs and seconds of validation); a few hundred pairs cost a few milliseconds."""


@dataclass
class DocumentCost:
    fields: int
    """Fields selected with every fragment spread counted in full."""
    same_name_pairs: int
    """Pairs of fields with one response name that validation compares (see above)."""


def document_cost(document: DocumentNode) -> DocumentCost:
    """What validating ``document`` will cost, in time linear in the document's size."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    known: dict[str, tuple[int, Counter[str]]] = {}
    visiting: set[str] = set()
    pairs = 0

    def fragment(name: str) -> tuple[int, Counter[str]]:
        if name in known:
            return known[name]
        definition = fragments.get(name)
        if definition is None or name in visiting:
            return 0, Counter()  # unknown fragments and cycles are left to the validation rules
        visiting.add(name)
        known[name] = selection(definition.selection_set)
        visiting.discard(name)
        return known[name]

    def collect(selection_set: SelectionSetNode) -> tuple[int, Counter[str]]:
        """Fields below ``selection_set`` and the response names at its own level."""
        total, names = 0, Counter[str]()
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                names[(node.alias or node.name).value] += 1
                total += 1 + (selection(node.selection_set)[0] if node.selection_set else 0)
            elif isinstance(node, InlineFragmentNode):
                inner_total, inner_names = collect(node.selection_set)
                total += inner_total
                names.update(inner_names)
            elif isinstance(node, FragmentSpreadNode):
                inner_total, inner_names = fragment(node.name.value)
                total += inner_total
                names.update(inner_names)
        return total, names

    def selection(selection_set: SelectionSetNode) -> tuple[int, Counter[str]]:
        nonlocal pairs
        total, names = collect(selection_set)
        pairs += sum(count * (count - 1) // 2 for count in names.values())
        return total, names

    fields = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            fields += selection(definition.selection_set)[0]
        elif isinstance(definition, FragmentDefinitionNode):
            fields += fragment(definition.name.value)[0]
    return DocumentCost(fields=fields, same_name_pairs=pairs)


def _measured(document: DocumentNode) -> DocumentCost | None:
    try:
        return document_cost(document)
    except RecursionError:
        return None


class CostCache:
    """Costs by query text, most recent 256: a till sends the same few documents, and the text
    determines the document, so the text alone is the key."""

    def __init__(self, size: int = 256) -> None:
        self._costs: OrderedDict[str, DocumentCost | None] = OrderedDict()
        self._size = size

    def cost(self, query: str | None, document: DocumentNode) -> DocumentCost | None:
        if query is None:
            return _measured(document)
        if query in self._costs:
            self._costs.move_to_end(query)
            return self._costs[query]
        cost = self._costs[query] = _measured(document)
        if len(self._costs) > self._size:
            self._costs.popitem(last=False)
        return cost


COSTS = CostCache()


def too_complex(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": QUERY_TOO_COMPLEX})


class BoundedValidationCache(ValidationCache):
    """The validation cache, behind a check of the document's expanded size.

    One extension does both because the cache validates whatever it is given: a document over
    the limit gets ``QUERY_TOO_COMPLEX`` and the validation rules never see it, and a new
    operation name (a cache miss) cannot skip the check.
    """

    def __init__(self, *, max_fields: int, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.max_fields = max_fields

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        refusal = None if document is None else self._refusal(document)
        if refusal is not None:
            self.execution_context.pre_execution_errors = [refusal]
            yield
            return
        yield from super().on_validate()

    def _refusal(self, document: DocumentNode) -> GraphQLError | None:
        operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
        if operations > 1 and not self.execution_context._provided_operation_name:
            # The GraphQL-over-HTTP rule. Strawberry would run the first operation, and only
            # its private field tells a name sent from a name it guessed.
            return GraphQLError(
                "The document has several operations: send operationName to pick one.",
                extensions={"code": OPERATION_NAME_REQUIRED},
            )
        cost = COSTS.cost(self.execution_context.query, document)
        if cost is None:
            return too_complex("The document nests too deeply.")
        if cost.fields > self.max_fields:
            return too_complex(
                f"The document selects {cost.fields} fields with its fragments expanded; "
                f"the limit is {self.max_fields}."
            )
        if cost.same_name_pairs > MAX_SAME_NAME_PAIRS:
            return too_complex(
                "The document repeats fields under the same name too often "
                f"({cost.same_name_pairs} pairs to compare; the limit is {MAX_SAME_NAME_PAIRS})."
            )
        return None
