"""Composite search values (FHIR R4 search.html#composite), such as Observation `code-value-quantity`.

For every value of the composite's expression (an Observation, one of its components...) each
component's expression is evaluated from that value and encoded as its own parameter type would
be; every combination of the components' encodings is one stored object, its fields named by
component (`a`, `b`...) with the type's sub-fields (`bv`, `bs`, `bc`, `bu` for a quantity, `al`,
`ah` for a date range). A search then asks for one object matching every part (`$elemMatch`),
so `8480-6$gt100` matches a code and a value of the same component, not of two.
"""

from __future__ import annotations

from itertools import product
from typing import TYPE_CHECKING, Any

from fhir_server.search.fhirpath_walker import Item
from fhir_server.search.normalize import date, number, quantity, reference, string, token, uri
from fhir_server.timefmt import instant

if TYPE_CHECKING:
    from fhir_server.search.parameters import SearchParam

LETTERS = "abcdefgh"
# A resource with many components of many codings stays a bounded number of index entries.
MAX_COMBINATIONS = 500


def atoms(component_type: str, items: list[Item]) -> list[dict[str, Any]]:
    """A component's encoded values, each as the sub-fields it stores (`""` is the field itself)."""
    ix: dict[str, Any] = {}
    sk: dict[str, Any] = {}
    match component_type:
        case "token":
            token.encode("v", items, ix, sk)
            return [{"": key} for key in ix.get("v", ())]
        case "string":
            string.encode("v", items, ix, sk)
            return [{"": value} for value in ix.get("v", ())]
        case "uri":
            uri.encode("v", items, ix, sk)
            return [{"": value} for value in ix.get("v", ())]
        case "reference":
            reference.encode("v", items, ix, sk, False)
            return [{"": key} for key in ix.get("v", ())]
        case "number":
            number.encode("v", items, ix, sk)
            return [{"": value} for value in ix.get("v", ())]
        case "quantity":
            quantity.encode("v", items, ix, sk)
            return [{"v": q["v"], "s": q["s"], "c": q["c"], "u": q["u"]} for q in ix.get("v", ())]
        case "date":
            date.encode("v", items, ix, sk)
            return [{"l": instant(r["l"]), "h": instant(r["h"])} for r in ix.get("v", ())]
    return []


def encode(param: SearchParam, items: list[Item], resource: dict, ix: dict) -> None:
    combinations: list[dict[str, Any]] = []
    for item in items:
        parts: list[list[dict[str, Any]]] = []
        for letter, component in zip(LETTERS, param.components):
            found = atoms(component.type, component.evaluate(item, resource))
            if not found:
                break
            parts.append([{letter + suffix: value for suffix, value in atom.items()} for atom in found])
        else:
            for combination in product(*parts):
                merged = {key: value for part in combination for key, value in part.items()}
                if merged not in combinations:
                    combinations.append(merged)
                if len(combinations) >= MAX_COMBINATIONS:
                    break
    if combinations:
        ix[param.code] = combinations
