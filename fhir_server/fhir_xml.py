"""FHIR XML (R4 xml.html) to and from the JSON form the server holds, driven by the R4 definitions.

The order of elements, which elements repeat, the type of each value (a primitive written as a
`value` attribute, a datatype, a backbone element, a nested resource) all come from
`fhir_server.definitions.structure`, read from the specification's StructureDefinitions, so every
R4 type is covered. (fhir.resources ships R4B and R5 models only; 18 R4 resource types, the
MedicinalProduct* family among them, do not exist there.)

The rules applied (xml.html, json.html): the resource type is the root element's name, in the
`http://hl7.org/fhir` namespace; a primitive is an element whose `value` attribute holds the value,
with its `id` as an attribute and its extensions as child elements (JSON's `_name`); `Element.id`
and `Extension.url` are attributes; the narrative `div` is XHTML in its own namespace (JSON holds
it as a string); a resource inside a resource (`contained`, `Bundle.entry.resource`) is wrapped in
the element that holds it; elements come in the order the definitions give; no element is empty.

A body is parsed by the project's hardened parser (`cda.safe_xml`: DOCTYPE refused before libxml2
sees it, no entity, no network, no file, depth bounded), which also drops comments and processing
instructions. Then text where FHIR has none, elements R4 does not define and empty elements are
refused, each with the path where it was met.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from lxml import etree

from cda.errors import CdaError
from cda.safe_xml import parse_xml
from fhir_server.definitions import structure
from fhir_server.definitions.structure import Element, Node

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_F = "{" + FHIR_NS + "}"
_X = "{" + XHTML_NS + "}"
# A resource's id is an element; every other element's id, and an extension's url, are attributes
# of their element (xml.html).
RESOURCE_ID = "Resource.id"
EXTENSION_URL = "Extension.url"
INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt"})
RESOURCE = "Resource"
XHTML = "xhtml"
# R4 datatypes.html: the regular expressions of decimal and integer.
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[0]|[-+]?[1-9][0-9]*")


class XmlFormatError(ValueError):
    """The document is not FHIR XML; `location` is the element path where that was found."""

    def __init__(self, message: str, location: str = "") -> None:
        super().__init__(message)
        self.location = location


# For the narratives the server holds (JSON strings, already accepted): they keep their comments.
# A div cannot carry a DOCTYPE (`_xhtml` parses only text that starts with the element), so there is
# no DTD or entity to resolve.
_DIV_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _elements(element: etree._Element, location: str) -> list[etree._Element]:
    """The child elements, without comments and processing instructions; text between them is refused."""
    children = []
    for child in element:
        _no_text(child.tail, location)
        if isinstance(child.tag, str):
            children.append(child)
    return children


@cache
def _positions(name: str) -> dict[Element, int]:
    found = structure.node(name)
    return {element: index for index, element in enumerate(found.elements)} if found else {}


def _node(name: str) -> Node:
    found = structure.node(name)
    if found is None:
        raise XmlFormatError(f"R4 has no type {name}")
    return found


def _is_attribute(definition: Element) -> bool:
    return (definition.name == "id" and definition.path != RESOURCE_ID) or definition.path == EXTENSION_URL


def _is_resource_type(value_type: str) -> bool:
    return value_type == RESOURCE or structure.is_concrete_resource(value_type)


# --- JSON -> XML -------------------------------------------------------------------------------

def to_xml(resource: dict[str, Any], pretty: bool = False) -> bytes:
    """A resource (a dict in FHIR JSON form) as a FHIR XML document."""
    root = _resource_element(resource, None)
    if pretty:
        _indent(root, 0)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _indent(element: etree._Element, depth: int) -> None:
    """Two spaces a level, for FHIR's elements only: whitespace inside the narrative is its content."""
    children = list(element)
    if not children or str(element.tag).startswith(_X):
        return
    element.text = "\n" + "  " * (depth + 1)
    for child in children:
        _indent(child, depth + 1)
        child.tail = "\n" + "  " * (depth + 1)
    children[-1].tail = "\n" + "  " * depth


def _resource_element(resource: dict[str, Any], parent: etree._Element | None) -> etree._Element:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not structure.is_concrete_resource(resource_type):
        raise XmlFormatError(f"not an R4 resource type: {resource_type!r}")
    if parent is None:
        element = etree.Element(_F + resource_type, nsmap={None: FHIR_NS})
    else:
        element = etree.SubElement(parent, _F + resource_type)
    _write_children(element, resource, resource_type)
    return element


def _write_children(element: etree._Element, value: dict[str, Any], node_name: str) -> None:
    node = _node(node_name)
    positions = _positions(node_name)
    names: dict[str, None] = {}
    # `resourceType` is the element's name for a resource, an element of its own elsewhere
    # (ExampleScenario.instance.resourceType).
    skipped = "resourceType" if structure.is_concrete_resource(node_name) else None
    for key in value:
        if key != skipped:
            names[key[1:] if key.startswith("_") else key] = None
    known = [(name, node.keys[name]) for name in names if name in node.keys]
    # Elements R4 does not define cannot be written in the spec's order; the server stores none
    # (validation refuses them), so dropping them here hides nothing a client sent and kept.
    known.sort(key=lambda item: positions.get(item[1][0], len(positions)))
    for name, (definition, value_type) in known:
        content = value.get(name)
        if _is_attribute(definition):
            if content is not None:
                element.set(name, _text(content))
            continue
        if structure.primitive(value_type) is not None:
            _write_primitives(element, name, value_type, content, value.get("_" + name))
            continue
        for item in content if isinstance(content, list) else [content]:
            if not isinstance(item, dict):
                continue
            child = etree.SubElement(element, _F + name)
            if _is_resource_type(value_type):
                _resource_element(item, child)
            else:
                _write_children(child, item, value_type)


def _write_primitives(element: etree._Element, name: str, value_type: str, content: Any, extra: Any) -> None:
    if value_type == XHTML:
        if isinstance(content, str):
            element.append(_xhtml(content))
        return
    values = content if isinstance(content, list) else [content]
    extras = extra if isinstance(extra, list) else [extra]
    for index in range(max(len(values) if content is not None else 0, len(extras) if extra is not None else 0)):
        item = values[index] if content is not None and index < len(values) else None
        about = extras[index] if extra is not None and index < len(extras) else None
        if item is None and not about:
            continue
        child = etree.SubElement(element, _F + name)
        if isinstance(about, dict) and about.get("id") is not None:
            child.set("id", _text(about["id"]))
        if item is not None:
            child.set("value", _text(item))
        if isinstance(about, dict):
            for extension in about.get("extension") or []:
                if isinstance(extension, dict):
                    _write_children(etree.SubElement(child, _F + "extension"), extension, "Extension")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _xhtml(div: str) -> etree._Element:
    """The narrative's XHTML as an element in the XHTML namespace (JSON holds it as a string)."""
    try:
        if not div.lstrip().startswith("<div"):
            raise etree.XMLSyntaxError("not a div", None, 0, 0)
        parsed = etree.fromstring(div.encode("utf-8"), _DIV_PARSER)
    except etree.XMLSyntaxError:
        # A div that is not well-formed XML (validation refuses those on write) is kept as its text.
        parsed = etree.Element(_X + "div", nsmap={None: XHTML_NS})
        parsed.text = div
        return parsed
    for item in parsed.iter():
        if isinstance(item.tag, str) and not item.tag.startswith("{"):
            item.tag = _X + item.tag
    return parsed


# --- XML -> JSON -------------------------------------------------------------------------------

def from_xml(raw: bytes) -> dict[str, Any]:
    """A FHIR XML document as the resource's FHIR JSON form (a dict)."""
    try:
        root = parse_xml(raw, max_bytes=len(raw))
    except CdaError as exc:
        raise XmlFormatError(exc.message) from None
    return _read_resource(root, "")


def _split(tag: Any) -> tuple[str, str]:
    namespace, _, local = str(tag)[1:].partition("}") if str(tag).startswith("{") else ("", "", str(tag))
    return namespace, local


def _read_resource(element: etree._Element, where: str) -> dict[str, Any]:
    namespace, resource_type = _split(element.tag)
    location = f"{where}.{resource_type}" if where else resource_type
    if namespace != FHIR_NS:
        raise XmlFormatError(f"<{resource_type}> is not in the FHIR namespace ({FHIR_NS})", location)
    if not structure.is_concrete_resource(resource_type):
        raise XmlFormatError(f"{resource_type} is not an R4 resource type", location)
    _only_namespaced_attributes(element, location)
    result: dict[str, Any] = {"resourceType": resource_type}
    _read_children(element, resource_type, result, resource_type)
    return result


def _only_namespaced_attributes(element: etree._Element, location: str, allowed: tuple[str, ...] = ()) -> None:
    for attribute in element.attrib:
        # xsi:schemaLocation and the like say nothing about the content.
        if not attribute.startswith("{") and attribute not in allowed:
            raise XmlFormatError(f"unexpected attribute '{attribute}'", location)


def _no_text(text: str | None, location: str) -> None:
    if text and text.strip():
        raise XmlFormatError("text is not allowed here (FHIR XML puts values in 'value' attributes)", location)


def _read_children(element: etree._Element, node_name: str, result: dict[str, Any], location: str) -> None:
    node = _node(node_name)
    _no_text(element.text, location)
    found: dict[str, list[tuple[Any, dict[str, Any] | None]]] = {}
    kinds: dict[str, tuple[Element, str]] = {}
    for child in _elements(element, location):
        namespace, name = _split(child.tag)
        here = f"{location}.{name}"
        entry = node.keys.get(name)
        if entry is None or _is_attribute(entry[0]):
            raise XmlFormatError(f"R4 defines no element '{name}' here", here)
        definition, value_type = entry
        expected = XHTML_NS if value_type == XHTML else FHIR_NS
        if namespace != expected:
            raise XmlFormatError(f"<{name}> must be in the namespace {expected}", here)
        if name in found and not definition.repeats:
            raise XmlFormatError(f"'{name}' may appear once only", here)
        kinds[name] = entry
        found.setdefault(name, []).append(_read_value(child, value_type, here))
    for attribute, value in element.attrib.items():
        if attribute.startswith("{"):
            continue
        entry = node.keys.get(attribute)
        if entry is None or not _is_attribute(entry[0]):
            raise XmlFormatError(f"unexpected attribute '{attribute}'", location)
        result[attribute] = value
    for name, values in found.items():
        definition, _ = kinds[name]
        plain = [value for value, _ in values]
        extras = [extra for _, extra in values]
        if definition.repeats:
            if any(value is not None for value in plain):
                result[name] = plain
            if any(extra is not None for extra in extras):
                result["_" + name] = extras
        else:
            if plain[0] is not None:
                result[name] = plain[0]
            if extras[0] is not None:
                result["_" + name] = extras[0]


def _read_value(element: etree._Element, value_type: str, location: str) -> tuple[Any, dict[str, Any] | None]:
    """The JSON value of one element, and for a primitive its `_name` part (id, extensions)."""
    if value_type == XHTML:
        return etree.tostring(element, encoding="unicode", with_tail=False), None
    if structure.primitive(value_type) is not None:
        return _read_primitive(element, value_type, location)
    if _is_resource_type(value_type):
        _only_namespaced_attributes(element, location)
        _no_text(element.text, location)
        inner = _elements(element, location)
        if len(inner) != 1:
            raise XmlFormatError("must hold exactly one resource", location)
        return _read_resource(inner[0], location), None
    value: dict[str, Any] = {}
    _read_children(element, value_type, value, location)
    if not value:
        raise XmlFormatError("FHIR XML has no empty elements", location)
    return value, None


def _read_primitive(element: etree._Element, value_type: str, location: str) -> tuple[Any, dict[str, Any] | None]:
    _only_namespaced_attributes(element, location, ("value", "id"))
    _no_text(element.text, location)
    extra: dict[str, Any] = {}
    if "id" in element.attrib:
        extra["id"] = element.get("id")
    extensions = []
    for child in _elements(element, location):
        namespace, name = _split(child.tag)
        if namespace != FHIR_NS or name != "extension":
            raise XmlFormatError(f"a primitive holds only extensions, not <{name}>", f"{location}.{name}")
        extension: dict[str, Any] = {}
        _read_children(child, "Extension", extension, f"{location}.extension")
        extensions.append(extension)
    if extensions:
        extra["extension"] = extensions
    raw = element.get("value")
    if raw is None and not extra:
        raise XmlFormatError("a primitive needs a value attribute or extensions", location)
    if raw == "":
        raise XmlFormatError("a value attribute may not be empty", location)
    return (None if raw is None else _typed(raw, value_type, location)), (extra or None)


def _typed(raw: str, value_type: str, location: str) -> Any:
    """The JSON value of a primitive: booleans and numbers are JSON's own, everything else a string."""
    if value_type == "boolean":
        if raw not in ("true", "false"):
            raise XmlFormatError(f"'{raw[:40]}' is not a boolean", location)
        return raw == "true"
    if value_type in INTEGER_TYPES:
        if not _INTEGER.fullmatch(raw):
            raise XmlFormatError(f"'{raw[:40]}' is not an integer", location)
        return int(raw)
    if value_type == "decimal":
        if not _DECIMAL.fullmatch(raw):
            raise XmlFormatError(f"'{raw[:40]}' is not a decimal", location)
        return int(raw) if _INTEGER.fullmatch(raw) else float(raw)
    return raw
