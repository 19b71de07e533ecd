"""The fields of a resource type that get an index: what the server indexes before a type's first
write (`Repository.ready`) and what `fhir-server mongo-setup` creates ahead of time."""

from __future__ import annotations

from collections.abc import Callable

from fhir_server.search.extract import NOT_EXTRACTED
from fhir_server.search.fields import ix_field
from fhir_server.search.parameters import SearchParameterRegistry

# The part of a stored date range or quantity that a search compares first.
SUB_FIELD = {"date": ".l", "quantity": ".v"}
IndexFields = Callable[[str], tuple[list[str], list[str]]]


def index_fields(registry: SearchParameterRegistry) -> IndexFields:
    def fields(resource_type: str) -> tuple[list[str], list[str]]:
        """The fields searches compare: (scalars: single references; arrays: the other parameters).

        Dates and quantities are compared on their bounds and values (`l`, `v`); composite and
        `near` values only through sub-fields of several parts, which no one-field index serves.
        """
        scalar: list[str] = []
        arrays: list[str] = []
        for param in registry.for_type(resource_type):
            if not param.searchable or param.code in NOT_EXTRACTED or param.type in ("composite", "special"):
                continue
            if param.single and param.type == "reference":
                scalar.append(ix_field(param.code))
            else:
                arrays.append(ix_field(param.code) + SUB_FIELD.get(param.type, ""))
        return scalar, arrays

    return fields
