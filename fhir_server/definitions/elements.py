"""The R4 definition and datatype of every element of a resource instance.

Rules that depend on an element's type (a transaction rewrites `urn:uuid:` in uri elements but not
in strings; a required binding applies to `Observation.status` and to `Identifier.use` wherever an
Identifier appears) need to know, for each JSON property, which ElementDefinition it is. The types
come from the R4 model fhirpathpy ships, generated from the R4 StructureDefinitions: `path2Type`
(element path -> type code), `choiceTypePaths` (the types of each `[x]` element),
`pathsDefinedElsewhere` (contentReference) and `type2Parent` (type hierarchy).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhirpathpy.models import models

_R4 = models["r4"]
_PATH_TYPES: dict[str, str] = _R4["path2Type"]
_CHOICE_TYPES: dict[str, list[str]] = _R4["choiceTypePaths"]
_DEFINED_ELSEWHERE: dict[str, str] = _R4["pathsDefinedElsewhere"]
_PARENT_TYPE: dict[str, str] = _R4["type2Parent"]
PRIMITIVE_TYPES = frozenset(name for name in _PARENT_TYPE if name[0].islower())
# Backbone elements have no type entry of their own, only their children do (`Observation.component.code`).
_BACKBONES = frozenset(
    path.rsplit(".", depth)[0] for path in _PATH_TYPES for depth in range(1, path.count("."))
) - set(_PATH_TYPES)


@dataclass(frozen=True)
class ElementType:
    path: str  # ElementDefinition.path: Observation.component.code, Identifier.value, Observation.value[x]
    type: str  # R4 type code: string, uri, code, Reference, CodeableConcept, BackboneElement, Resource...


# A primitive's extensions (`_status`) are an Element whatever the primitive.
PRIMITIVE_ELEMENT = ElementType("Element", "Element")


@dataclass(eq=False)
class ElementNode:
    """One occurrence of an element in an instance; `replace` changes it in place."""

    expression: str  # Observation.component[0].valueQuantity.comparator
    element: ElementType
    holder: dict[str, Any]
    key: str
    index: int | None

    @property
    def value(self) -> Any:
        found = self.holder[self.key]
        return found if self.index is None else found[self.index]

    def replace(self, value: Any) -> None:
        if self.index is None:
            self.holder[self.key] = value
        else:
            self.holder[self.key][self.index] = value


def _ancestry(definition: str) -> list[str]:
    """Where the children of `definition` may be defined: itself, then what it derives from."""
    if "." in definition:
        return [definition, "BackboneElement", "Element"]
    chain = [definition]
    while chain[-1] in _PARENT_TYPE:
        chain.append(_PARENT_TYPE[chain[-1]])
    return chain


def _type_code(name: str) -> str:
    """`DateTime` in a choice (`valueDateTime`) is the primitive `dateTime`; `Quantity` stays."""
    lowered = name[0].lower() + name[1:]
    return lowered if lowered in PRIMITIVE_TYPES else name


@lru_cache(maxsize=None)
def child(definition: str, key: str) -> ElementType | None:
    """The element a JSON property `key` is, inside an instance of `definition` (a type name or a
    backbone element path); None when R4 defines no such element."""
    for owner in _ancestry(definition):
        path = f"{owner}.{key}"
        if path in _DEFINED_ELSEWHERE:
            return ElementType(_DEFINED_ELSEWHERE[path], "BackboneElement")
        found = _PATH_TYPES.get(path)
        if found is not None:
            # The model gives FHIRPath's System.String for Element.id, Resource.id and Extension.url.
            if found == "System.String":
                found = "uri" if path == "Extension.url" else "string"
            return ElementType(path, found)
        if path in _BACKBONES:
            return ElementType(path, "BackboneElement")
        for cut in range(1, len(key)):
            if key[cut].isupper():
                choices = _CHOICE_TYPES.get(f"{owner}.{key[:cut]}")
                if choices is not None and key[cut:] in choices:
                    return ElementType(f"{owner}.{key[:cut]}[x]", _type_code(key[cut:]))
    return None


def type_ancestry(path: str) -> list[str]:
    """`Age.comparator` is defined as `Quantity.comparator`: the same element under each type the
    first segment derives from."""
    head, _, rest = path.partition(".")
    return [f"{owner}.{rest}" for owner in _ancestry(head)] if rest else [path]


def walk(resource: dict[str, Any], expression: str | None = None) -> Iterator[ElementNode]:
    """Every element of a resource, depth first, contained and nested resources included.
    Properties R4 does not define are skipped (validation reports them)."""
    resource_type = resource.get("resourceType")
    if isinstance(resource_type, str):
        yield from _walk_object(resource, resource_type, expression or resource_type)


def _walk_object(holder: dict[str, Any], definition: str, expression: str) -> Iterator[ElementNode]:
    for key, value in holder.items():
        if key == "resourceType":
            continue
        if key.startswith("_"):
            element: ElementType | None = PRIMITIVE_ELEMENT
            name = key[1:]
        else:
            element = child(definition, key)
            name = key
        if element is None:
            continue
        if isinstance(value, list):
            for index in range(len(value)):
                yield from _visit(ElementNode(f"{expression}.{name}[{index}]", element, holder, key, index))
        else:
            yield from _visit(ElementNode(f"{expression}.{name}", element, holder, key, None))


def _visit(node: ElementNode) -> Iterator[ElementNode]:
    yield node
    value = node.value
    if not isinstance(value, dict):
        return
    kind = node.element.type
    if kind == "Resource":
        resource_type = value.get("resourceType")
        if isinstance(resource_type, str):
            yield from _walk_object(value, resource_type, node.expression)
    elif kind == "BackboneElement":
        yield from _walk_object(value, node.element.path, node.expression)
    elif kind not in PRIMITIVE_TYPES:
        yield from _walk_object(value, kind, node.expression)
