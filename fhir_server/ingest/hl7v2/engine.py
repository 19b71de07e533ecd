"""The generic engine that turns a message into transaction entries by reading a JSON map.

A map (one per message structure in `mappings/hl7v2/`) has `events` (the trigger events it
takes, each with values for `$event`), optionally `versions` (the MSH-12 versions it takes, else
AR 203, checked by `convert`), `require` (rules `{"test", "error", "location"}` whose
test must not be empty, else AE 101 at that location) and `resources`, a list of declarations:

- `name`, `resourceType`, `template`: FHIR JSON in which objects with a `$` key are expressions;
- `write`: `{"mode": "update", "key": [...], "optionalKey": [...]}` PUTs `Type/<uuid of the key>`;
  `{"mode": "conditional-update" | "conditional-create", "identifier": e}` PUTs `Type?identifier=`
  or POSTs with `ifNoneExist`; `"optional": true` skips the resource when the identifier is
  unusable instead of refusing the message. Ids derive from business identifiers: replays converge;
- `each`: `{"segment": "OBX", "where": {...}}` or `{"group": "ORC"}` (a segment and those after
  it up to the next one), one resource per item, or with `resources` one group of declarations;
- `when` (skip when empty), `require` (as above, in the declaration's scope), `after` (hooks);
- `{"$include": "fragments/x.json"}` in the list brings a shared declaration.

The expression language:

- `{"$path": "PID-3", "$as": "Identifier", "$all": true, "$map": "table", "$default": x}`
  reads a field of the current scope (`/PID-3` the whole message, `../OBR-3` the parent scope);
- `{"$first": [...]}`, `{"$if": e, "$then": a, "$else": b}`, `{"$concat": [...], "$sep": " "}`;
- `{"$each": {"segment": "OBX", "where": {...}, "first": true}, "$template": t}` one item per
  segment (`where` values: a value, a list of values or `{"not": ...}`; `first`: one item);
- `{"$event": "key"}` the map's value for the message's trigger event;
- `{"$ref": "name"}` a Reference to a resource declared under that name;
- `{"$fn": "name", ...}` a named function of `functions.py` for what is not a field copy;
- `{"$include": "fragments/x.json", "$with": {...}}` a shared fragment, plus elements of its own;
  in a `resources` list, `{"$include": ...}` brings a shared declaration.
Empty values (None, "", [], {}) are dropped, so templates can name every possible element.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fhir_server.ingest.hl7v2.datatypes import CONVERTERS, table
from fhir_server.ingest.hl7v2.er7 import Message, Path, Segment, Value
from fhir_server.ingest.hl7v2.errors import Hl7Error
from fhir_server.ingest.hl7v2.mapfiles import load_json

# Namespace of the name-based UUIDs that give resources their deterministic ids.
ID_NAMESPACE = uuid.UUID("8f4d7c3e-2b1a-5e6f-9a0b-1c2d3e4f5a6b")


def stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "|".join(parts)))


def identifier_token(identifier: dict[str, Any]) -> str:
    return f"{identifier.get('system', '')}|{identifier['value']}"


def identifier_query(identifier: dict[str, Any]) -> str:
    system = quote(identifier.get("system", ""), safe=":/.")
    return f"identifier={system}|{quote(identifier['value'], safe='')}"


@dataclass
class Produced:
    """A resource the message produced, with the reference other resources use for it."""

    name: str
    reference: str
    entry: dict[str, Any]


@dataclass
class Scope:
    segments: list[Segment]
    parent: Scope | None = None
    names: dict[str, Produced] = field(default_factory=dict)

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def lookup(self, name: str) -> Produced | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def root(self) -> Scope:
        return self if self.parent is None else self.parent.root()


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


Function = Callable[["Engine", dict[str, Any], Scope], Any]


class Engine:
    def __init__(self, message: Message, event: str, structure_map: dict[str, Any], functions: dict[str, Function]) -> None:
        self.message = message
        self.event = event
        self.map = structure_map
        self.functions = functions
        self.produced: list[Produced] = []
        self.warnings: list[str] = []
        # Per-message memo of functions (decoded documents, CDA conversions) so work happens once.
        self.state: dict[str, Any] = {}

    # --- resources ---------------------------------------------------------------------------

    def run(self) -> list[Produced]:
        root = Scope(self.message.segments)
        self.check_required(self.map.get("require", []), root)
        self.declare(self.map["resources"], root)
        return self.produced

    def declare(self, declarations: list[dict[str, Any]], scope: Scope) -> None:
        for declaration in declarations:
            if "$include" in declaration:
                declaration = load_json(declaration["$include"])
            if "each" in declaration:
                for item in self.iterate(declaration["each"], scope):
                    self.produce(declaration, item, scope)
            else:
                self.produce(declaration, scope)

    def produce(self, declaration: dict[str, Any], scope: Scope, declaring: Scope | None = None) -> None:
        """One resource (or one group of declarations) in `scope`; its name is also visible from
        the `declaring` scope of an `each`, the first item's resource answering there."""
        if "when" in declaration and is_empty(self.evaluate(declaration["when"], scope)):
            return
        self.check_required(declaration.get("require", []), scope)
        if "resources" in declaration:
            self.declare(declaration["resources"], scope)
            return
        resource_type = declaration["resourceType"]
        body = self.evaluate(declaration["template"], scope) or {}
        resource = {"resourceType": resource_type, **body}
        entry = self.entry(declaration, resource, scope)
        if entry is None:
            return
        produced = Produced(declaration["name"], entry.pop("_reference"), entry)
        existing = self.find(entry["fullUrl"])
        if existing is None:
            self.produced.append(produced)
        else:
            # The same business identifier twice (one prescriber on every order): one entry.
            produced = existing
        scope.names[declaration["name"]] = produced
        if declaring is not None:
            declaring.names.setdefault(declaration["name"], produced)
        if existing is not None:
            return
        for hook in declaration.get("after", []):
            self.functions[hook["$fn"]](self, {**hook, "produced": produced}, scope)

    def find(self, full_url: str) -> Produced | None:
        return next((p for p in self.produced if p.entry["fullUrl"] == full_url), None)

    def entry(self, declaration: dict[str, Any], resource: dict[str, Any], scope: Scope) -> dict[str, Any] | None:
        """The transaction entry; None for an `optional` write whose identifier is unusable."""
        write = declaration["write"]
        resource_type = resource["resourceType"]
        if write["mode"] == "update":
            parts = self.key_parts(write["key"], scope)
            if len(parts) < len(write["key"]):
                return self.missing(write)
            # Optional parts keep their position when absent, so two keys never collide by shifting.
            for expression in write.get("optionalKey", []):
                found = self.key_parts([expression], scope)
                parts.append(found[0] if found else "")
            resource_id = stable_uuid(resource_type, *parts)
            resource = {"resourceType": resource_type, "id": resource_id, **{k: v for k, v in resource.items() if k != "resourceType"}}
            return {
                "fullUrl": f"urn:uuid:{resource_id}",
                "resource": resource,
                "request": {"method": "PUT", "url": f"{resource_type}/{resource_id}"},
                "_reference": f"{resource_type}/{resource_id}",
            }
        identifier = self.evaluate(write["identifier"], scope)
        if not identifier or not identifier.get("value") or not identifier.get("system"):
            return self.missing(write)
        full_url = f"urn:uuid:{stable_uuid(resource_type, identifier_token(identifier))}"
        query = identifier_query(identifier)
        if write["mode"] == "conditional-update":
            request = {"method": "PUT", "url": f"{resource_type}?{query}"}
        else:
            request = {"method": "POST", "url": resource_type, "ifNoneExist": query}
        return {"fullUrl": full_url, "resource": resource, "request": request, "_reference": full_url}

    def key_parts(self, expressions: list[Any], scope: Scope) -> list[str]:
        parts = []
        for expression in expressions:
            value = self.evaluate(expression, scope)
            if isinstance(value, dict) and "value" in value:
                parts.append(identifier_token(value))
            elif not is_empty(value):
                parts.append(str(value))
        return parts

    def missing(self, rule: dict[str, Any]) -> None:
        if rule.get("optional"):
            return None
        raise Hl7Error("AE", "101", rule.get("error", "a required identifier is missing"), self.location(rule.get("location", "")))

    def check_required(self, rules: list[dict[str, Any]], scope: Scope) -> None:
        for rule in rules:
            if is_empty(self.evaluate(rule["test"], scope)):
                raise Hl7Error(rule.get("ack", "AE"), rule.get("code", "101"), rule["error"], self.location(rule.get("location", "")))

    def location(self, path: str) -> str:
        if not path:
            return ""
        p = Path.parse(path)
        return p.location()

    # --- iteration ---------------------------------------------------------------------------

    def iterate(self, spec: dict[str, Any], scope: Scope) -> Iterator[Scope]:
        if "segment" in spec:
            for segment in scope.all(spec["segment"]):
                item = Scope([segment], scope)
                if self.matches(spec.get("where", {}), item):
                    yield item
            return
        start = spec["group"]
        group: list[Segment] | None = None
        for segment in scope.segments:
            if segment.name == start:
                if group:
                    yield Scope(group, scope)
                group = [segment]
            elif group is not None:
                group.append(segment)
        if group:
            yield Scope(group, scope)

    def matches(self, where: dict[str, Any], scope: Scope) -> bool:
        for path, condition in where.items():
            value = self.read_text(path, scope)
            if isinstance(condition, dict):
                excluded = condition["not"]
                if value in (excluded if isinstance(excluded, list) else [excluded]):
                    return False
            elif value not in (condition if isinstance(condition, list) else [condition]):
                return False
        return True

    # --- expressions -------------------------------------------------------------------------

    def evaluate(self, template: Any, scope: Scope) -> Any:
        if isinstance(template, list):
            items = []
            for element in template:
                value = self.evaluate(element, scope)
                if isinstance(value, list):
                    items.extend(value)
                elif not is_empty(value):
                    items.append(value)
            return items or None
        if not isinstance(template, dict):
            return template
        operator = next((key for key in template if key.startswith("$")), None)
        if operator is None:
            result = {}
            for key, element in template.items():
                value = self.evaluate(element, scope)
                if not is_empty(value):
                    result[key] = value
            return result or None
        return self.OPERATORS[operator](self, template, scope)

    def segments_for(self, path: str, scope: Scope) -> tuple[Path, list[Segment]]:
        if path.startswith("/"):
            scope, path = scope.root(), path[1:]
        while path.startswith("../"):
            scope, path = scope.parent or scope, path[3:]
        p = Path.parse(path)
        return p, scope.all(p.segment)

    def values(self, path: str, scope: Scope, every: bool) -> list[Value]:
        p, segments = self.segments_for(path, scope)
        values: list[Value] = []
        for segment in segments if every else segments[:1]:
            repetitions = segment.repetitions(p.field)
            if p.repetition is not None:
                repetitions = repetitions[p.repetition - 1 : p.repetition]
            values.extend(repetitions if every else repetitions[:1])
        return values

    def read_text(self, path: str, scope: Scope) -> str:
        p, _ = self.segments_for(path, scope)
        values = self.values(path, scope, every=False)
        return values[0].get(p.component or 1, p.subcomponent or 1) if values else ""

    def op_path(self, template: dict[str, Any], scope: Scope) -> Any:
        path = template["$path"]
        converter = template.get("$as")
        p, _ = self.segments_for(path, scope)
        results = []
        for value in self.values(path, scope, every=bool(template.get("$all"))):
            if converter:
                source = value.component(p.component) if p.component else value
                converted = CONVERTERS[converter](source)
            else:
                converted = value.get(p.component or 1, p.subcomponent or 1) or None
            if converted is not None and "$map" in template:
                converted = table(template["$map"]).get(converted, template.get("$default"))
            if not is_empty(converted):
                results.append(converted)
        if not results and "$default" in template:
            return template["$default"]
        if template.get("$all"):
            return results or None
        return results[0] if results else None

    def op_first(self, template: dict[str, Any], scope: Scope) -> Any:
        for option in template["$first"]:
            value = self.evaluate(option, scope)
            if not is_empty(value):
                return value
        return None

    def op_if(self, template: dict[str, Any], scope: Scope) -> Any:
        branch = "$then" if not is_empty(self.evaluate(template["$if"], scope)) else "$else"
        return self.evaluate(template.get(branch), scope)

    def op_concat(self, template: dict[str, Any], scope: Scope) -> Any:
        parts: list[Any] = []
        for part in template["$concat"]:
            value = self.evaluate(part, scope)
            parts.extend(value if isinstance(value, list) else [value])
        text = template.get("$sep", "").join(str(part) for part in parts if not is_empty(part))
        return text or None

    def op_each(self, template: dict[str, Any], scope: Scope) -> Any:
        items = []
        for item in self.iterate(template["$each"], scope):
            value = self.evaluate(template["$template"], item)
            if isinstance(value, list):
                items.extend(value)
            elif not is_empty(value):
                items.append(value)
        if template["$each"].get("first"):
            return items[0] if items else None
        return items or None

    def op_event(self, template: dict[str, Any], scope: Scope) -> Any:
        return self.map["events"][self.event].get(template["$event"])

    def op_ref(self, template: dict[str, Any], scope: Scope) -> Any:
        produced = scope.lookup(template["$ref"])
        return {"reference": produced.reference} if produced else None

    def op_fn(self, template: dict[str, Any], scope: Scope) -> Any:
        return self.functions[template["$fn"]](self, template, scope)

    def op_include(self, template: dict[str, Any], scope: Scope) -> Any:
        included = self.evaluate(load_json(template["$include"]), scope) or {}
        extra = self.evaluate(template.get("$with", {}), scope) or {}
        return {**included, **extra} or None

    OPERATORS: dict[str, Callable[[Engine, dict[str, Any], Scope], Any]] = {
        "$path": op_path,
        "$first": op_first,
        "$if": op_if,
        "$concat": op_concat,
        "$each": op_each,
        "$event": op_event,
        "$ref": op_ref,
        "$fn": op_fn,
        "$include": op_include,
    }

