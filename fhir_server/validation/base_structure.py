"""The base R4 structure check every write goes through, from the R4 StructureDefinitions.

Every element must be one R4 defines for its place (`fhir_server.definitions.structure`), hold a
value of one of its types (primitives per `fhir_server.definitions.primitives`), repeat only if it
may, and be present when its minimum cardinality says so. Resources inside resources (`contained`,
`Bundle.entry.resource`) are checked as their own type. What the structure does not say comes from
the R4 rules themselves: the characters strings may hold (`characters`) and the required bindings
(`required_bindings`, codes, Codings and CodeableConcepts alike). Issues carry a FHIRPath-style
expression into the instance (`Patient.name[0].given[1]`) and never repeat the value found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhir_server.definitions.primitives import checker
from fhir_server.definitions.structure import RESOURCE, Element, Node, is_concrete_resource, node
from fhir_server.validation.characters import check_characters
from fhir_server.validation.issues import ValidationIssue
from fhir_server.validation.required_bindings import check_required_bindings

if TYPE_CHECKING:
    from fhir_server.validation.profile_registry import ProfileRegistry


def check_base_structure(resource: Any, registry: ProfileRegistry) -> list[ValidationIssue]:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return [ValidationIssue("error", "structure", [], "A resource must be a JSON object with a resourceType")]
    resource_type = resource["resourceType"]
    if not is_concrete_resource(resource_type):
        return [ValidationIssue("error", "not-supported", [], f"Unknown resource type {resource_type!r}")]
    structure = _Checker()
    structure.resource(resource, resource_type)
    issues = check_characters(resource, resource_type) + structure.issues
    # Bindings are looked up along the structure: only a well-formed resource can be walked for them.
    return issues if structure.issues else issues + check_required_bindings(resource, registry)


class _Checker:
    def __init__(self) -> None:
        self.issues: list[ValidationIssue] = []

    def error(self, code: str, where: str, message: str) -> None:
        self.issues.append(ValidationIssue("error", code, [where], message))

    def resource(self, value: Any, where: str) -> None:
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            self.error("value", where, "A resource must be a JSON object with a resourceType")
            return
        if not is_concrete_resource(value["resourceType"]):
            self.error("value", where, f"Unknown resource type {value['resourceType']!r}")
            return
        found = node(value["resourceType"])
        assert found is not None
        self.object(value, found, where, resource=True)

    def object(self, value: dict[str, Any], current: Node, where: str, *, resource: bool = False) -> None:
        present: dict[str, str] = {}  # element path -> the JSON key holding it
        for key, item in value.items():
            if resource and key == "resourceType":
                continue
            extension_part = key.startswith("_")
            found = current.keys.get(key[1:] if extension_part else key)
            if found is None or (extension_part and checker(found[1]) is None):
                self.error("structure", f"{where}.{key}", f"Unknown element '{key}' in {current.name}")
                continue
            element, value_type = found
            if item == []:
                # JSON forbids empty arrays (json.html); like the models before, the server reads one as absent.
                continue
            name = key[1:] if extension_part else key
            other = present.get(element.path)
            if other is not None and other != name:
                self.error("structure", f"{where}.{key}", f"{element.path} is given twice ('{other}' and '{name}')")
                continue
            present[element.path] = name
            if extension_part:
                self.primitive_extensions(item, element, f"{where}.{key}", value.get(name))
            else:
                self.values(item, element, value_type, f"{where}.{key}", value.get("_" + key))
        for element in current.elements:
            if element.min and element.path not in present:
                self.error("required", f"{where}.{element.name}",
                           f"{element.path} is required (minimum cardinality {element.min})")

    def values(self, item: Any, element: Element, value_type: str, where: str, extensions: Any) -> None:
        if isinstance(item, list):
            if not element.repeats:
                self.error("structure", where, f"{element.path} takes one value, not an array")
                return
            if element.max is not None and len(item) > element.max:
                self.error("structure", where, f"{element.path} takes at most {element.max} values")
            paired = extensions if isinstance(extensions, list) else []
            for index, one in enumerate(item):
                # A null keeps a repeating primitive aligned with `_name` when that position has only extensions.
                if one is None and index < len(paired) and paired[index] is not None:
                    continue
                self.value(one, element, value_type, f"{where}[{index}]")
        elif element.repeats:
            self.error("structure", where, f"{element.path} repeats: its value must be an array")
        else:
            self.value(item, element, value_type, where)

    def value(self, item: Any, element: Element, value_type: str, where: str) -> None:
        check = checker(value_type)
        if check is not None:
            why = check(item)
            if why is not None:
                self.error("value", where, f"{element.path} {why}")
            return
        if value_type == RESOURCE:
            self.resource(item, where)
            return
        if not isinstance(item, dict):
            self.error("value", where, f"{element.path} must be a JSON object ({value_type})")
            return
        inner = node(value_type)
        assert inner is not None, value_type
        self.object(item, inner, where)

    def primitive_extensions(self, item: Any, element: Element, where: str, values: Any) -> None:
        """`_name`: the id and extensions of a primitive, an array aligned with `name` when it repeats."""
        holder = node("Element")
        assert holder is not None
        items = item if isinstance(item, list) else [item]
        if isinstance(item, list) != element.repeats or (
                isinstance(item, list) and isinstance(values, list) and len(values) != len(item)):
            self.error("structure", where, f"_{element.name} does not line up with {element.name}")
            return
        for index, one in enumerate(items):
            if one is None and isinstance(item, list):
                continue
            inner_where = f"{where}[{index}]" if isinstance(item, list) else where
            if not isinstance(one, dict):
                self.error("value", inner_where, "must be a JSON object holding id and extension")
                continue
            self.object(one, holder, inner_where)
