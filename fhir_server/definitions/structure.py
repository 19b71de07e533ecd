"""The elements of every R4 resource and datatype, from the StructureDefinitions (`profiles/r4/structure/`).

A *node* is what a JSON object can hold: a datatype (`HumanName`), a resource (`Patient`) or a
backbone element, named by its path (`Patient.contact`). Each node knows its elements, and for
each JSON key the element it belongs to and the FHIR type of its value (`deceasedBoolean` ->
`deceased[x]`, `boolean`). A resource type's file is read the first time the type is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fhir_server.definitions.files import R4_DIR, read_json

STRUCTURE_DIR = R4_DIR / "structure"
# The one concrete R4 resource with no RESTful endpoint (R4 parameters.html: it "is used to pass
# information into and back from an operation"); every other one is stored and searched.
NOT_STORED = frozenset({"Parameters"})
# Element types whose elements are defined inline, under the element's own path.
INLINE_TYPES = frozenset({"BackboneElement", "Element"})
RESOURCE = "Resource"
BASE_FILE = "base.json"


@dataclass(frozen=True)
class Element:
    path: str  # `Patient.contact.name`; a choice element ends in `[x]`
    types: tuple[str, ...]
    min: int
    max: int | None  # None: unbounded
    summary: bool = False
    binding: str | None = None  # ValueSet url of a required binding on a code
    targets: tuple[str, ...] = ()  # resource types a Reference may point to

    @property
    def name(self) -> str:
        """The FHIRPath name: `deceased` for `deceased[x]`."""
        last = self.path.rsplit(".", 1)[-1]
        return last[:-3] if last.endswith("[x]") else last

    @property
    def repeats(self) -> bool:
        return self.max is None or self.max > 1


@dataclass(frozen=True)
class Node:
    name: str
    elements: tuple[Element, ...]
    # JSON key -> (element, FHIR type of the value: a datatype, a resource, or an inline node's path)
    keys: dict[str, tuple[Element, str]] = field(hash=False, compare=False)


@dataclass(frozen=True)
class Primitive:
    name: str
    regex: str | None


def _element(row: list[Any], root: str) -> tuple[Element, str | None]:
    path, types, low, high = row[:4]
    extra: dict[str, Any] = row[4] if len(row) > 4 else {}
    element = Element(
        path=f"{root}.{path}", types=tuple(types), min=int(low), max=None if high == "*" else int(high),
        summary=bool(extra.get("summary")), binding=extra.get("binding"), targets=tuple(extra.get("targets", ())),
    )
    reference = extra.get("contentReference")
    return element, (f"{root}.{reference}" if reference else None)


@cache
def _base_types() -> dict[str, dict[str, Any]]:
    """Resource, DomainResource and the datatypes, read together: every resource needs some of them."""
    return {shape["type"]: shape for shape in read_json(STRUCTURE_DIR / BASE_FILE)["types"]}


@cache
def _shape(type_name: str) -> dict[str, Any] | None:
    """The stored definition of a datatype or resource type, or None when R4 has no such type."""
    found = _base_types().get(type_name)
    if found is not None:
        return found
    if not type_name.isidentifier() or not type_name[:1].isupper():
        return None
    path = STRUCTURE_DIR / f"{type_name}.json"
    if not path.exists() and not path.with_name(path.name + ".gz").exists():
        return None
    return read_json(path)


@cache
def _tree(root: str) -> tuple[dict[str, list[tuple[Element, str | None]]], dict[str, Element]]:
    """Elements of a type grouped by parent path, and every element by path."""
    shape = _shape(root)
    assert shape is not None
    children: dict[str, list[tuple[Element, str | None]]] = {}
    by_path: dict[str, Element] = {}
    for row in shape["elements"]:
        element, reference = _element(row, root)
        children.setdefault(element.path.rsplit(".", 1)[0], []).append((element, reference))
        by_path[element.path] = element
    return children, by_path


def _key(element: Element, fhir_type: str) -> str:
    last = element.path.rsplit(".", 1)[-1]
    if not last.endswith("[x]"):
        return last
    return last[:-3] + fhir_type[0].upper() + fhir_type[1:]


@cache
def node(name: str) -> Node | None:
    """The node of a datatype, a resource type, or a backbone path (`Patient.contact`); None if unknown."""
    root, _, inner = name.partition(".")
    shape = _shape(root)
    if shape is None:
        return None
    if shape.get("alias"):
        return node(shape["alias"])
    children, by_path = _tree(root)
    if inner:
        owner = by_path.get(name)
        if owner is None or not set(owner.types) <= INLINE_TYPES:
            return None
        base = owner.types[0] if owner.types else "BackboneElement"
    else:
        base = shape.get("base")
    elements: dict[str, tuple[Element, str | None]] = {}
    inherited = node(base) if base else None
    if inherited is not None:
        for element in inherited.elements:
            elements[element.name] = (element, None)
    for element, reference in children.get(name, ()):
        elements[element.name] = (element, reference)
    keys: dict[str, tuple[Element, str]] = {}
    for element, reference in elements.values():
        if inherited is not None and element in inherited.elements:
            keys.update({k: v for k, v in inherited.keys.items() if v[0] is element})
            continue
        if reference is not None:
            keys[_key(element, "")] = (element, reference)
            continue
        for fhir_type in element.types:
            value_type = element.path if fhir_type in INLINE_TYPES and element.path in children else fhir_type
            keys[_key(element, fhir_type)] = (element, value_type)
    return Node(name, tuple(e for e, _ in elements.values()), keys)


@cache
def primitive(name: str) -> Primitive | None:
    shape = _base_types().get(name)
    if shape is None or shape["kind"] != "primitive-type":
        return None
    return Primitive(name, shape.get("regex"))


@cache
def is_a(type_name: str, ancestor: str) -> bool:
    """Whether a type is `ancestor` or derives from it (`canonical` is a `uri`, `Age` a `Quantity`)."""
    current: str | None = type_name
    while current is not None:
        if current == ancestor:
            return True
        shape = _shape(current) if current[:1].isalpha() else None
        current = (shape.get("alias") or shape.get("base")) if shape else None
    return False


@cache
def resource_types() -> frozenset[str]:
    """Every R4 resource type this server stores and searches (145)."""
    # One file per concrete resource type beside the base types' file: listing them reads none.
    names = {path.name.split(".", 1)[0] for path in STRUCTURE_DIR.glob("*.json*") if not path.name.startswith(BASE_FILE)}
    return frozenset(names - NOT_STORED)


def is_concrete_resource(name: str) -> bool:
    """An R4 resource type an instance may have (the stored ones and Parameters)."""
    return name in resource_types() or name in NOT_STORED
