"""FHIRPath Patch (R4 fhirpatch.html): a Parameters resource whose `operation` parameters add,
insert, delete, replace or move elements named by FHIRPath paths.

A patch needs to know *where* a path leads (the object and key holding each element, to change it
in place), which a FHIRPath engine does not give: it returns values. So the paths are walked here,
over the subset patch paths use: element names (a choice element by its name, `Observation.value`),
`[n]`, `first()`, `last()`, `extension('url')` and `where(criteria)`. The criteria of `where` are
any FHIRPath, evaluated on each candidate by fhirpathpy (with the R4 model), already the server's
FHIRPath engine for search parameters. Element types come from `definitions.elements`, so a value
given as parts (a backbone element) is built with the right repetitions.

Refusals name the operation (its index and type) and the client's path, never what the resource
holds: a malformed patch is 400; a patch that does not fit this version of the resource (a path
that finds nothing to replace, or several elements, an index out of range) is 422.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from fhir_server.definitions import elements, structure
from fhir_server.errors import FhirError

TYPES = ("add", "insert", "delete", "replace", "move")
_R4 = models["r4"]
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?((?:\[\d+\])*)", re.DOTALL)
_INDEX = re.compile(r"\[(\d+)\]")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
_SHOWN_PATH = 200


@dataclass
class Location:
    """Where an element sits: `holder[key]`, or `holder[key][index]` in a list; the root has no holder."""

    holder: dict[str, Any] | None
    key: str
    index: int | None
    definition: str  # the element's type, or its backbone path, for walking further
    root: dict[str, Any] | None = None

    @property
    def value(self) -> Any:
        if self.holder is None:
            return self.root
        found = self.holder[self.key]
        return found if self.index is None else found[self.index]


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def apply_fhirpath_patch(resource: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    operations = [p for p in parameters.get("parameter") or [] if isinstance(p, dict)]
    if not operations or any(p.get("name") != "operation" for p in operations):
        raise FhirError(400, "invalid", "A FHIRPath Patch is a Parameters resource of 'operation' parameters")
    patched = copy.deepcopy(resource)
    for index, operation in enumerate(operations):
        parts = _parts(operation)
        kind = parts.get("type", {}).get("valueCode")
        path = parts.get("path", {}).get("valueString")
        where = f"FHIRPath Patch operation {index} ({kind if kind in TYPES else 'unknown type'} {str(path)[:_SHOWN_PATH]})"
        try:
            if kind not in TYPES:
                raise _Refusal(400, "its type must be one of " + ", ".join(TYPES))
            if not isinstance(path, str) or not path:
                raise _Refusal(400, "it needs a path (valueString)")
            _apply(patched, kind, path, parts)
        except _Refusal as refusal:
            raise FhirError(refusal.status, "invalid" if refusal.status == 400 else "processing",
                            f"{where}: {refusal}") from None
    for name in ("resourceType", "id"):
        if patched.get(name) != resource.get(name):
            raise FhirError(422, "processing", f"A patch may not change {name}", [name])
    return patched


def _parts(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for part in operation.get("part") or []:
        if isinstance(part, dict) and isinstance(part.get("name"), str):
            if part["name"] in found:
                raise FhirError(400, "invalid", f"A FHIRPath Patch operation has two '{part['name']}' parts")
            found[part["name"]] = part
    return found


def _apply(resource: dict[str, Any], kind: str, path: str, parts: dict[str, dict[str, Any]]) -> None:
    if kind in ("insert", "move"):
        holder, key, definition = _list_owner(resource, path)
        items = holder.get(key)
        items = items if isinstance(items, list) else []
        if kind == "insert":
            at = _integer(parts, "index")
            if at > len(items):
                raise _Refusal(422, f"index {at} is past the end of the list ({len(items)} elements)")
            element = elements.child(definition, key)
            items.insert(at, _value(parts, _definition(element, None)))
            _shift_extensions(holder, key, lambda extras: extras.insert(at, None))
        else:
            source, destination = _integer(parts, "source"), _integer(parts, "destination")
            if source >= len(items) or destination >= len(items):
                raise _Refusal(422, f"source {source} or destination {destination} is outside the list ({len(items)} elements)")
            items.insert(destination, items.pop(source))
            _shift_extensions(holder, key, lambda extras: extras.insert(destination, extras.pop(source)))
        holder[key] = items
        return
    found = _evaluate(resource, path)
    if kind == "delete":
        if len(found) > 1:
            raise _Refusal(422, f"the path finds {len(found)} elements; delete removes one")
        if found:
            _delete(found[0])
        return
    if len(found) != 1:
        raise _Refusal(422, f"the path finds {len(found)} elements; {kind} needs exactly one")
    target = found[0]
    if kind == "replace":
        if target.holder is None:
            raise _Refusal(400, "the whole resource cannot be replaced by a patch")
        new = _value(parts, target.definition)
        if target.index is None:
            target.holder[target.key] = new
        else:
            target.holder[target.key][target.index] = new
        return
    container = target.value
    if not isinstance(container, dict):
        raise _Refusal(422, "the path finds a primitive value, which has no elements to add to")
    name = parts.get("name", {}).get("valueString")
    if not isinstance(name, str) or not name:
        raise _Refusal(400, "add needs a name (valueString)")
    key = _key_for(target.definition, name, parts.get("value", {}))
    element = elements.child(target.definition, key)
    new = _value(parts, _definition(element, None))
    if _repeats(target.definition, key):
        container.setdefault(key, []).append(new)
    elif key in container:
        raise _Refusal(422, f"'{name}' is already there and does not repeat: use replace")
    else:
        container[key] = new


def _integer(parts: dict[str, dict[str, Any]], name: str) -> int:
    value = parts.get(name, {}).get("valueInteger")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Refusal(400, f"it needs '{name}', a valueInteger of 0 or more")
    return value


def _shift_extensions(holder: dict[str, Any], key: str, change: Any) -> None:
    """A repeating primitive's `_key` list stays aligned with its values."""
    extras = holder.get("_" + key)
    if isinstance(extras, list):
        change(extras)


def _delete(target: Location) -> None:
    if target.holder is None:
        raise _Refusal(400, "the whole resource cannot be deleted by a patch")
    if target.index is None:
        target.holder.pop(target.key, None)
        target.holder.pop("_" + target.key, None)
        return
    del target.holder[target.key][target.index]
    _shift_extensions(target.holder, target.key, lambda extras: extras.pop(target.index) if target.index < len(extras) else None)
    if not target.holder[target.key]:
        del target.holder[target.key]
        target.holder.pop("_" + target.key, None)


def _list_owner(resource: dict[str, Any], path: str) -> tuple[dict[str, Any], str, str]:
    """The object holding the list a path names (insert and move work on the list itself)."""
    steps = _steps(path, resource)
    if not steps or steps[-1][1] is not None or steps[-1][2]:
        raise _Refusal(400, "insert and move take the path of a list, ending with the element's name")
    owners = _walk(resource, steps[:-1])
    if len(owners) != 1 or not isinstance(owners[0].value, dict):
        raise _Refusal(422, f"the path finds {len(owners)} places to hold the list; it needs exactly one")
    owner = owners[0]
    name = steps[-1][0]
    key = _existing_key(owner.value, owner.definition, name) or name
    if elements.child(owner.definition, key) is None:
        raise _Refusal(400, f"R4 defines no element '{name}' there")
    if not _repeats(owner.definition, key):
        raise _Refusal(400, f"'{name}' is not a list")
    return owner.value, key, owner.definition


def _repeats(definition: str, key: str) -> bool:
    node = structure.node(definition)
    entry = node.keys.get(key) if node else None
    return bool(entry and entry[0].repeats)


def _key_for(definition: str, name: str, value_part: dict[str, Any]) -> str:
    """The JSON key of an added element: its name, or for a choice element its name and type (`valueQuantity`)."""
    if elements.child(definition, name) is not None:
        return name
    for given in value_part:
        if given.startswith("value") and len(given) > 5:
            candidate = name + given[5:]
            if elements.child(definition, candidate) is not None:
                return candidate
    raise _Refusal(400, f"R4 defines no element '{name}' there (for a type it does not have)")


def _definition(element: elements.ElementType | None, value: Any) -> str:
    """What to walk an element's value with: its backbone path, its datatype, or a resource's type."""
    if element is None:
        return ""
    if element.type == "BackboneElement":
        return element.path
    if element.type == "Resource":
        return str(value.get("resourceType", "")) if isinstance(value, dict) else ""
    return element.type


def _value(parts: dict[str, dict[str, Any]], definition: str) -> Any:
    part = parts.get("value")
    if part is None:
        raise _Refusal(400, "it needs a value")
    return _part_value(part, definition)


def _part_value(part: dict[str, Any], definition: str) -> Any:
    """A value given as `value[x]`, or as parts naming the elements of a backbone element."""
    given = [key for key in part if key.startswith("value")]
    if len(given) == 1:
        return copy.deepcopy(part[given[0]])
    if "resource" in part:
        return copy.deepcopy(part["resource"])
    children = part.get("part")
    if not given and isinstance(children, list) and children:
        built: dict[str, Any] = {}
        for child in children:
            if not isinstance(child, dict) or not isinstance(child.get("name"), str):
                raise _Refusal(400, "a value's parts each need a name")
            key = _key_for(definition, child["name"], child)
            element = elements.child(definition, key)
            value = _part_value(child, _definition(element, None))
            if _repeats(definition, key):
                built.setdefault(key, []).append(value)
            elif key in built:
                raise _Refusal(400, f"the value gives '{child['name']}' twice, which does not repeat")
            else:
                built[key] = value
        return built
    raise _Refusal(400, "its value must be one value[x], or parts")


# --- paths ---------------------------------------------------------------------------------------

def _split(path: str) -> list[str]:
    """The steps of a path, split on the dots outside brackets, parentheses and quotes."""
    steps, depth, quoted, start = [], 0, False, 0
    for position, char in enumerate(path):
        if quoted:
            if char == "'" and path[position - 1] != "\\":
                quoted = False
        elif char == "'":
            quoted = True
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "." and depth == 0:
            steps.append(path[start:position])
            start = position + 1
    if quoted or depth:
        raise _Refusal(400, "the path has an unclosed quote or bracket")
    steps.append(path[start:])
    return steps


def _steps(path: str, resource: dict[str, Any]) -> list[tuple[str, str | None, list[int]]]:
    """(name, function arguments or None, indexes) for each step, the leading type name dropped."""
    parsed = []
    for text in _split(path.strip()):
        match = _STEP.fullmatch(text.strip())
        if match is None:
            raise _Refusal(400, "the path is not one a patch can follow (names, [n], where(), first(), last(), extension())")
        name, arguments, indexes = match.group(1), match.group(2), match.group(3)
        parsed.append((name, arguments, [int(i) for i in _INDEX.findall(indexes)]))
    if parsed and parsed[0][0] == resource.get("resourceType") and parsed[0][1] is None:
        parsed[0] = ("", None, parsed[0][2])
    return parsed


def _evaluate(resource: dict[str, Any], path: str) -> list[Location]:
    return _walk(resource, _steps(path, resource))


def _walk(resource: dict[str, Any], steps: list[tuple[str, str | None, list[int]]]) -> list[Location]:
    current = [Location(None, "", None, str(resource.get("resourceType", "")), root=resource)]
    for name, arguments, indexes in steps:
        if name == "" and arguments is None:
            pass
        elif arguments is None:
            current = [found for location in current for found in _children(location, name)]
        elif name == "where":
            current = [location for location in current if _holds(location, arguments)]
        elif name == "first":
            current = current[:1]
        elif name == "last":
            current = current[-1:]
        elif name == "extension":
            url = _QUOTED.fullmatch(arguments.strip())
            if url is None:
                raise _Refusal(400, "extension() takes the extension's url in quotes")
            current = [found for location in current for found in _children(location, "extension")
                       if isinstance(found.value, dict) and found.value.get("url") == url.group(1)]
        else:
            raise _Refusal(400, f"the function {name}() is not one a patch path can use")
        for index in indexes:
            current = current[index:index + 1]
    return current


def _existing_key(value: dict[str, Any], definition: str, name: str) -> str | None:
    """The key an element has in this object: its name, or a choice element's name with its type."""
    if name in value:
        return name
    for key in value:
        if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
            element = elements.child(definition, key)
            if element is not None and element.path.endswith(f".{name}[x]"):
                return key
    return None


def _children(location: Location, name: str) -> list[Location]:
    value = location.value
    if not isinstance(value, dict):
        return []
    key = _existing_key(value, location.definition, name)
    if key is None:
        return []
    element = elements.child(location.definition, key)
    found = value[key]
    if isinstance(found, list):
        return [Location(value, key, i, _definition(element, item)) for i, item in enumerate(found)]
    return [Location(value, key, None, _definition(element, found))]


def _holds(location: Location, criteria: str) -> bool:
    try:
        return fhirpathpy.evaluate(location.value, criteria, {}, _R4) == [True]
    except Exception as exc:  # fhirpathpy raises its parser's own errors for a bad expression
        raise _Refusal(400, f"where() criteria cannot be evaluated ({exc.__class__.__name__})") from None
