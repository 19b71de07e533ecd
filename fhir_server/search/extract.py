"""Search index extraction: the values of every search parameter of a resource, encoded for storage.

Each parameter's FHIRPath expression is evaluated by `fhir_server.search.fhirpath_walker` (a fast
walker for simple paths, fhirpathpy for the rest); the values are encoded per parameter type by
`fhir_server.search.normalize`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from fhir_server.search.fhirpath_walker import Item
from fhir_server.search.normalize import composite, date, number, position, quantity, reference, string, token, uri
from fhir_server.search.sortkeys import encode as sort_encode

if TYPE_CHECKING:
    from fhir_server.search.parameters import SearchParameterRegistry

# The storage keeps these outside the index (`_id` and `ts`).
NOT_EXTRACTED = frozenset({"_id", "_lastUpdated"})
# Index code suffix of a parameter's sort value without the id that ends its `sk` key: a sort on
# several parameters orders ties of one key by the next, which an id-suffixed key never leaves.
SORT_VALUE = ":sort"

ENCODERS: dict[str, Callable[[str, list[Item], dict, dict], None]] = {
    "token": token.encode,
    "string": string.encode,
    "date": date.encode,
    "number": number.encode,
    "quantity": quantity.encode,
    "uri": uri.encode,
    # The one R4 parameter of type special with an expression: Location `near`.
    "special": position.encode,
}


def extract_index(resource: dict, registry: SearchParameterRegistry) -> tuple[dict, dict]:
    """`(ix, sk)`: encoded values per parameter code, and a scalar sort key per parameter code."""
    ix: dict = {}
    sk: dict = {}
    for param in registry.for_type(resource["resourceType"]):
        if param.code in NOT_EXTRACTED:
            continue
        items = param.evaluate(resource)
        if not items:
            continue
        if param.type == "reference":
            reference.encode(param.code, items, ix, sk, param.single)
        elif param.type == "composite":
            composite.encode(param, items, resource, ix)
        else:
            encoder = ENCODERS.get(param.type)
            if encoder is not None:
                encoder(param.code, items, ix, sk)
    for code, value in sk.items():
        # A letter first, as in `sk`: the embedded store would compare a date-like string as a datetime.
        ix[code + SORT_VALUE] = "k" + sort_encode(value)
    return ix, sk


