"""A walker over FHIR JSON for the FHIRPath that search parameter expressions use.

Almost all expressions are simple paths (`A.b.c`, unions, `.where(resolve() is X)`, `as X`,
`.ofType(X)`, `.extension('url')`), which are compiled here into steps that know, from the
R4 StructureDefinitions, the FHIR type and cardinality of each element. fhirpathpy evaluates
the rest; it is much slower, so it is only the fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import fhirpathpy
from fhirpathpy.models import models as fhirpath_models

from fhir_server.definitions.structure import is_a, node
from fhir_server.search.normalize.reference import reference_type

Item = tuple[str | None, Any]  # (FHIR type name, or None when unknown; JSON value)
Evaluator = Callable[[dict], list[Item]]
ItemEvaluator = Callable[[Item, dict], list[Item]]  # (one value, the resource it is in) -> values
_Step = Callable[[list[Item], dict], list[Item]]

# Resource-level names an expression may start with, besides the resource type itself.
GENERIC_ROOTS = frozenset({"Resource", "DomainResource"})
# FHIRPath System types written in `as`/`ofType` mapped to the FHIR primitive they select.
SYSTEM_TYPES = {"Boolean": "boolean", "String": "string", "Integer": "integer", "Decimal": "decimal",
                "Date": "date", "DateTime": "dateTime", "Time": "time"}


# --- FHIR model: type and cardinality of each element ---------------------------------------------

Element = tuple[str, str | None, bool]  # (JSON key, FHIR type name, repeats)


@lru_cache(maxsize=None)
def element_map(type_name: str) -> dict[str, tuple[Element, ...]] | None:
    """Element name -> its JSON keys (one per type for a choice element `value[x]`), or None if unknown.

    Types are R4's (`fhir_server.definitions.structure`); a backbone element's type is its path.
    """
    found = node(type_name)
    if found is None:
        return None
    elements: dict[str, list[Element]] = {}
    for key, (element, value_type) in found.keys.items():
        elements.setdefault(element.name, []).append((key, value_type, element.repeats))
    return {name: tuple(keys) for name, keys in elements.items()}


# --- FHIRPath subset: parsing ---------------------------------------------------------------------

class Unsupported(Exception):
    """The expression is outside the subset compiled here; fhirpathpy evaluates it."""


class NotApplicable(Exception):
    """The expression starts at another resource type: no values for this base."""


_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|([A-Za-z_][A-Za-z0-9_]*)|(\S))")


def _tokenize(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if not match or match.end() == position:
            break
        text = match.group(1) or match.group(2) or match.group(3)
        if match.group(3) and text not in ".()|=":
            raise Unsupported(text)
        tokens.append(text)
        position = match.end()
    return tokens


@dataclass
class _Compiled:
    step: _Step
    types: frozenset[str | None]
    many: bool


class _Compiler:
    """Recursive descent over the token list; each rule returns a compiled step with static types."""

    def __init__(self, expression: str, base: str, start: frozenset[str | None] | None = None) -> None:
        self.tokens = _tokenize(expression)
        self.position = 0
        self.base = base
        self.start = start if start is not None else frozenset({base})

    def peek(self, offset: int = 0) -> str | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected!r}, found {token!r}")
        self.position += 1
        return token

    def compile(self) -> _Compiled:
        compiled = self.union(_Compiled(_identity, self.start, False))
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()!r}")
        return compiled

    def union(self, context: _Compiled) -> _Compiled:
        branches: list[_Compiled] = []
        while True:
            start = self.position
            try:
                branches.append(self.sequence(context))
            except NotApplicable:
                self.position = start
                self.skip_branch()
            if self.peek() != "|":
                break
            self.take("|")
        if not branches:
            raise NotApplicable()
        if len(branches) == 1:
            return branches[0]
        steps = [branch.step for branch in branches]

        def union_step(items: list[Item], root: dict) -> list[Item]:
            out: list[Item] = []
            for step in steps:
                out.extend(step(items, root))
            return out

        return _Compiled(union_step, frozenset().union(*(b.types for b in branches)), True)

    def skip_branch(self) -> None:
        depth = 0
        while self.peek() is not None and not (depth == 0 and self.peek() in ("|", ")")):
            token = self.take()
            depth += token == "("
            depth -= token == ")"

    def sequence(self, context: _Compiled) -> _Compiled:
        if self.peek() == "(":
            self.take("(")
            current = self.union(context)
            self.take(")")
        else:
            name = self.peek()
            if name is None or not (name[0].isalpha() or name[0] == "_"):
                raise Unsupported(f"unexpected {name!r}")
            if name[0].isupper():
                self.take()
                if name != self.base and name not in GENERIC_ROOTS:
                    raise NotApplicable()
                current = context
            else:
                # A leading element name or function call applies to the input, as after a `.`.
                current = self.postfix(context)
        while self.peek() in (".", "as"):
            if self.take() == "as":
                current = _type_filter(current, self.take())
            else:
                current = self.postfix(current)
        return current

    def postfix(self, current: _Compiled) -> _Compiled:
        name = self.take()
        if self.peek() != "(":
            return _field(current, name)
        self.take("(")
        if name in ("ofType", "as"):
            result = _type_filter(current, self.take())
        elif name == "extension":
            result = _extension(current, _literal(self.take()))
        elif name == "where":
            result = self.where(current)
        else:
            raise Unsupported(name)
        self.take(")")
        return result

    def where(self, current: _Compiled) -> _Compiled:
        if self.peek() == "resolve":
            self.take("resolve")
            self.take("(")
            self.take(")")
            self.take("is")
            return _resolves_to(current, self.take())
        name = self.take()
        self.take("=")
        return _field_equals(current, name, _literal(self.take()))


def _literal(token: str) -> str:
    if len(token) < 2 or token[0] != "'" or token[-1] != "'":
        raise Unsupported(token)
    return re.sub(r"\\(.)", r"\1", token[1:-1])


# --- FHIRPath subset: steps -----------------------------------------------------------------------

def _identity(items: list[Item], root: dict) -> list[Item]:
    return items


def _field(current: _Compiled, name: str) -> _Compiled:
    # Per input type: the JSON keys to read, with the FHIR type and cardinality of each.
    table: dict[str | None, tuple[Element, ...]] = {}
    for fhir_type in current.types:
        elements = element_map(fhir_type) if fhir_type else None
        if elements is None:
            raise Unsupported(f"unknown type {fhir_type!r}")
        if name in elements:
            table[fhir_type] = elements[name]
    if not table:
        raise Unsupported(f"no element {name!r} in {sorted(map(str, current.types))}")
    # Wide choice elements (Extension.value[x] has 50 types) are read by scanning the few keys present.
    wide = {t: {key: (kt, many) for key, kt, many in keys} for t, keys in table.items() if len(keys) > 6}
    inner = current.step

    def field_step(items: list[Item], root: dict) -> list[Item]:
        out: list[Item] = []
        for fhir_type, value in inner(items, root):
            if type(value) is not dict:
                continue
            by_key = wide.get(fhir_type)
            if by_key is not None:
                pairs = [(by_key[k][0], v) for k, v in value.items() if k in by_key]
            else:
                pairs = [(kt, value.get(key)) for key, kt, _ in table.get(fhir_type, ())]
            for kt, found in pairs:
                if found is None:
                    continue
                if type(found) is list:
                    out.extend((kt, element) for element in found if element is not None)
                else:
                    out.append((kt, found))
        return out

    many = current.many or any(m for keys in table.values() for _, _, m in keys)
    types = frozenset(kt for keys in table.values() for _, kt, _ in keys)
    return _Compiled(field_step, types, many)


def _type_filter(current: _Compiled, type_name: str) -> _Compiled:
    # FHIRPath `as`/`ofType` keep values of the type or of a type derived from it: `as uri` keeps
    # canonicals, `as Quantity` keeps Age and Duration.
    wanted = SYSTEM_TYPES.get(type_name, type_name)
    inner = current.step

    def type_step(items: list[Item], root: dict) -> list[Item]:
        return [item for item in inner(items, root) if item[0] is not None and is_a(item[0], wanted)]

    kept = frozenset(t for t in current.types if t is not None and is_a(t, wanted))
    return _Compiled(type_step, kept or frozenset({wanted}), current.many)


def _extension(current: _Compiled, url: str) -> _Compiled:
    inner = current.step

    def extension_step(items: list[Item], root: dict) -> list[Item]:
        out: list[Item] = []
        for _, value in inner(items, root):
            if type(value) is dict:
                for extension in value.get("extension") or ():
                    if type(extension) is dict and extension.get("url") == url:
                        out.append(("Extension", extension))
        return out

    return _Compiled(extension_step, frozenset({"Extension"}), True)


def _resolves_to(current: _Compiled, resource_type: str) -> _Compiled:
    inner = current.step

    def resolves(value: Any, root: dict) -> bool:
        if type(value) is not dict:
            return False
        literal = value.get("reference")
        if isinstance(literal, str):
            if literal.startswith("#"):
                return any(
                    isinstance(c, dict) and c.get("id") == literal[1:] and c.get("resourceType") == resource_type
                    for c in root.get("contained") or ()
                )
            found = reference_type(literal)
            if found is not None:
                return found == resource_type
        return value.get("type") == resource_type

    def resolve_step(items: list[Item], root: dict) -> list[Item]:
        return [item for item in inner(items, root) if resolves(item[1], root)]

    return _Compiled(resolve_step, current.types, current.many)


def _field_equals(current: _Compiled, name: str, literal: str) -> _Compiled:
    inner = current.step

    def equals_step(items: list[Item], root: dict) -> list[Item]:
        return [item for item in inner(items, root) if type(item[1]) is dict and item[1].get(name) == literal]

    return _Compiled(equals_step, current.types, current.many)


# --- Entry points -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompiledExpression:
    evaluate: Evaluator
    single: bool  # at most one value for this base, per the model's cardinalities
    fast: bool  # compiled walker (False: fhirpathpy)
    base: str = ""
    types: frozenset[str | None] = frozenset()  # FHIR types of the values (empty: unknown)

    def component(self, expression: str) -> ItemEvaluator:
        """A composite parameter's component: `expression` evaluated on one value of this one."""
        if self.fast and self.types and None not in self.types:
            try:
                step = _Compiler(expression, self.base, self.types).compile().step
            except (Unsupported, NotApplicable):
                pass
            else:
                return lambda item, root: step([item], root)
        path = fhirpathpy.compile(expression, fhirpath_models["r4"])
        # `%resource` (MolecularSequence variant coordinates) names the resource the value is in.
        return lambda item, root: [(None, value) for value in path(item[1], {"resource": root, "rootResource": root})
                                   if value is not None]


def _no_values(resource: dict) -> list[Item]:
    return []


def compile_expression(expression: str, base: str) -> CompiledExpression:
    """Compile a search parameter expression for resources of type `base` (or `Resource`)."""
    try:
        compiled = _Compiler(expression, base).compile()
    except NotApplicable:
        return CompiledExpression(_no_values, True, True, base)
    except Unsupported:
        return CompiledExpression(_fhirpathpy_evaluator(expression), False, False, base)
    step = compiled.step

    def evaluate(resource: dict) -> list[Item]:
        return step([(base, resource)], resource)

    return CompiledExpression(evaluate, not compiled.many, True, base, compiled.types)


def _fhirpathpy_evaluator(expression: str) -> Evaluator:
    path = fhirpathpy.compile(expression, fhirpath_models["r4"])

    def evaluate(resource: dict) -> list[Item]:
        # Types are unknown here; the encoders infer them from the shape of each value.
        return [(None, value) for value in path(resource) if value is not None]

    return evaluate


def expression_for_base(expression: str, base: str) -> str:
    """The union branches of a multi-base expression that apply to `base` (all when none names a type)."""
    branches: list[str] = []
    depth, quoted, start = 0, False, 0
    for index, char in enumerate(expression):
        if char == "'" and (index == 0 or expression[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and char == "|":
            branches.append(expression[start:index].strip())
            start = index + 1
    branches.append(expression[start:].strip())
    kept = []
    for branch in branches:
        head = re.match(r"[\s(]*([A-Za-z_][A-Za-z0-9_]*)", branch)
        root = head.group(1) if head else ""
        if not root[:1].isupper() or root == base or root in GENERIC_ROOTS:
            kept.append(branch)
    return " | ".join(kept)
