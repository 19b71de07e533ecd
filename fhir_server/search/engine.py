"""The search engine: criteria to one MongoDB filter, keyset pages, chains, _has, includes.

The engine plans queries and never touches a collection: every query it needs (the page, the
count, the inner searches of chains and `_has`, `_include`, `_revinclude`) goes through the
`Queries` the repository hands it for one caller, which adds that caller's search-filter
conditions (fhir_server.storage.hooks). So nothing the filter hides can match, count or be included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from fhir_server.errors import FhirError
from fhir_server.definitions.compartment import COMPARTMENT
from fhir_server.search.compartment import PatientCompartment
from fhir_server.search.extract import SORT_VALUE
from fhir_server.search.lookup import LOOKUP_CODES
from fhir_server.search.fields import field_key, ix_field, sk_field
from fhir_server.search.filters import composite, date, near, number, reference, string, token, uri
from fhir_server.search.filters.combine import FilterBuilder
from fhir_server.search.paging import (
    Cursor,
    SortField,
    after_conditions,
    boundary,
    mongo_sort,
    reversed_fields,
    with_tiebreak,
)
from fhir_server.search.parameters import SearchParam, SearchParameterRegistry
from fhir_server.search.request import Criterion, Include, SearchRequest, parse_criterion
from fhir_server.search.shard_pins import compartment_pins, patients_of_keys, pinned_patients, pins_by
from fhir_server.storage.documents import Stored, from_current
from fhir_server.storage.sharding import by_patient

# A chain or _has resolves its inner search to ids first; past this many the search is refused
# rather than silently truncated.
MAX_INNER_IDS = 10_000
MAX_INCLUDED = 1_000
MAX_ITERATE_DEPTH = 4
SUPPORTED_MODIFIERS = {
    "token": {None, "not", "text", "of-type", "missing"},
    "string": {None, "exact", "contains", "missing"},
    "uri": {None, "below", "above", "not", "missing"},
    "reference": {None, "identifier", "missing"},
    "date": {None, "missing"},
    "number": {None, "missing"},
    "quantity": {None, "missing"},
    "composite": {None, "missing"},
    "special": {None, "missing"},
}
# Refused whatever the handling asked: ignoring them would answer every resource of the type.
ALWAYS_REFUSED = ("too-costly", "not-supported")


class Queries(Protocol):
    """The store queries of one caller (fhir_server.storage.repository.Reader)."""

    fast_count: bool

    async def find(self, resource_type: str, query: dict[str, Any], projection: dict[str, Any] | None = None, *,
                   sort: list[tuple[str, int]] | None = None, limit: int = 0) -> list[dict[str, Any]]: ...

    async def count(self, resource_type: str, query: dict[str, Any]) -> int: ...

    async def lookup_ids(self, resource_type: str, code: str,
                         token_keys: list[str]) -> list[tuple[str, str | None]]: ...

    async def routes(self, resource_type: str, ids: list[str]) -> dict[str, str | None]: ...


@dataclass
class Compiled:
    filter: dict[str, Any]
    impossible: bool
    used: list[Criterion]
    ignored: list[str]


@dataclass
class SearchResult:
    matches: list[Stored]
    included: list[Stored]
    total: int | None
    next: Cursor | None
    previous: Cursor | None
    used: list[Criterion]
    ignored: list[str]
    sort: list[tuple[str, bool]]


@dataclass
class _Context:
    base_url: str
    strict: bool
    queries: Queries
    ignored: list[str] = field(default_factory=list)


class SearchEngine:
    def __init__(self, registry: SearchParameterRegistry, resource_types: set[str]) -> None:
        self.registry = registry
        self.resource_types = resource_types
        self.compartment = PatientCompartment(registry)

    # ------------------------------------------------------------------ compilation
    async def compile(
        self, resource_type: str, criteria: list[Criterion], queries: Queries, *, base_url: str, strict: bool
    ) -> Compiled:
        context = _Context(base_url, strict, queries)
        builder = FilterBuilder()
        used: list[Criterion] = []
        for criterion in criteria:
            try:
                alternatives = await self._criterion(resource_type, criterion, context)
            except FhirError as exc:
                # A malformed value is ignored like an unknown parameter unless the client asked
                # for strict handling; a search too costly to run, or one the server cannot run, is
                # refused either way.
                if context.strict or any(i.code in ALWAYS_REFUSED for i in exc.issues):
                    raise
                context.ignored.append(criterion.raw_name)
                continue
            if alternatives is None:
                continue
            used.append(criterion)
            builder.any_of(alternatives)
            patients = pinned_patients(self.registry, resource_type, criterion, base_url)
            if patients:
                # The same matches, found on those patients' shards alone (fhir_server.search.shard_pins).
                builder.add(_one_of("pat", patients))
        builder.add({"del": False})
        return Compiled(builder.build(), builder.impossible, used, context.ignored)

    def _unknown(self, context: _Context, resource_type: str, criterion: Criterion, why: str) -> None:
        if context.strict:
            raise FhirError(400, "not-supported", f"{resource_type} search: {why}", [criterion.raw_name])
        context.ignored.append(criterion.raw_name)

    async def _criterion(self, resource_type: str, criterion: Criterion, context: _Context) -> list[dict[str, Any]] | None:
        """The ORed alternatives a criterion allows, or None when it is ignored."""
        name, modifier, values = criterion.name, criterion.modifier, criterion.values
        if name == "_id":
            return [_one_of("_id", values)]
        if name == "_lastUpdated":
            return date.scalar_condition("ts", values)
        if name == "_has":
            return await self._has(resource_type, criterion, context)
        param = self.registry.get(resource_type, name)
        if param is None:
            self._unknown(context, resource_type, criterion, f"unknown parameter '{name}'")
            return None
        if not param.searchable:
            raise FhirError(400, "not-supported", f"'{name}' (full-text or named-query search) is not supported "
                                                  "by this server", [criterion.raw_name])
        if criterion.chain:
            return await self._chain(resource_type, param, criterion, context)
        # `subject:Location=1` on a type this server does not store is valid and matches nothing stored.
        is_type_modifier = param.type == "reference" and modifier is not None and modifier in self._targets(param)
        if not is_type_modifier and modifier not in SUPPORTED_MODIFIERS.get(param.type, {None}):
            self._unknown(context, resource_type, criterion, f"modifier ':{modifier}' is not supported on '{name}' ({param.type})")
            return None
        field_name = ix_field(param.code)
        if modifier == "missing":
            if values[0] not in ("true", "false"):
                raise FhirError(400, "invalid", ":missing takes true or false", [criterion.raw_name])
            return [{field_name: {"$exists": values[0] == "false"}}]
        if param.type == "token" and modifier is None and param.code in LOOKUP_CODES:
            found = await context.queries.lookup_ids(resource_type, param.code, [token.token_key(v) for v in values])
            if not found:
                return []
            condition = _one_of("_id", sorted({i for i, _ in found}))
            if by_patient(resource_type):
                # Each entry names its resource's patient: the fetch reaches those patients' shards only.
                condition.update(_one_of("pat", sorted({p for _, p in found}, key=lambda p: p or "")))
            return [condition]
        match param.type:
            case "token":
                return [token.condition(field_name, modifier, values)]
            case "string":
                return [string.condition(field_name, modifier, values)]
            case "uri":
                return [uri.condition(field_name, modifier, values)]
            case "reference":
                return [reference.condition(field_name, modifier, values, self._targets(param), context.base_url)]
            case "date":
                return date.condition(field_name, values)
            case "number":
                return number.condition(field_name, values)
            case "quantity":
                return number.quantity_condition(field_name, values)
            case "composite":
                return composite.condition(field_name, param, values, context.base_url)
            case "special":
                return near.condition(field_name, values)
        self._unknown(context, resource_type, criterion, f"parameters of type {param.type} are not supported")
        return None

    def _targets(self, param: SearchParam) -> list[str]:
        """The types a reference parameter points to; `Reference(Any)` (Communication.partOf,
        Consent.provision.data) declares none and may point to any type this server stores."""
        return list(param.targets) if param.targets else sorted(self.resource_types)

    async def _chain(self, resource_type: str, param: SearchParam, criterion: Criterion,
                     context: _Context) -> list[dict[str, Any]]:
        if param.type != "reference":
            raise FhirError(400, "invalid", f"'{criterion.name}' is not a reference parameter and cannot be chained", [criterion.raw_name])
        targets = [criterion.modifier] if criterion.modifier else self._targets(param)
        inner_name = criterion.chain or ""
        keys: list[str] = []
        searchable = False
        for target in targets:
            if target not in self.resource_types:
                continue
            inner = parse_criterion(inner_name, ",".join(v.replace(",", "\\,") for v in criterion.values))
            if inner.name not in ("_id", "_lastUpdated", "_has") and self.registry.get(target, inner.name) is None:
                continue
            searchable = True
            ids = await self._inner_ids(target, [inner], context)
            keys += [f"{target}/{i}" for i in ids]
        if not searchable:
            raise FhirError(400, "invalid", f"No target of '{criterion.name}' has a parameter '{inner_name.split('.')[0]}'", [criterion.raw_name])
        if not keys:
            return []
        condition = _one_of(ix_field(param.code), keys)
        patients = patients_of_keys(param, keys) if pins_by(self.registry, resource_type, param.code) else None
        if patients:
            # `subject:Patient.identifier=...` names the patients it found (fhir_server.search.shard_pins).
            condition.update(_one_of("pat", patients))
        return [condition]

    async def _has(self, resource_type: str, criterion: Criterion, context: _Context) -> list[dict[str, Any]]:
        # _has:Type:reference:rest  where rest is a parameter of Type (possibly another _has)
        parts = (criterion.chain or "").split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise FhirError(400, "invalid", "_has must be _has:Type:reference:parameter", [criterion.raw_name])
        source, ref_code, rest = parts
        if source not in self.resource_types:
            raise FhirError(400, "invalid", f"_has names an unknown type '{source}'", [criterion.raw_name])
        ref = self.registry.get(source, ref_code)
        if ref is None or ref.type != "reference":
            raise FhirError(400, "invalid", f"'{ref_code}' is not a reference parameter of {source}", [criterion.raw_name])
        inner = parse_criterion(rest, ",".join(v.replace(",", "\\,") for v in criterion.values))
        compiled = await self.compile(source, [inner], context.queries, base_url=context.base_url, strict=True)
        if compiled.impossible:
            return []
        docs = await context.queries.find(source, compiled.filter, {ix_field(ref.code): 1}, limit=MAX_INNER_IDS + 1)
        if len(docs) > MAX_INNER_IDS:
            raise FhirError(400, "too-costly", f"_has matches more than {MAX_INNER_IDS} {source} resources; narrow it", [criterion.raw_name])
        # References to this server may be relative or written with its absolute URL.
        prefixes = (f"{resource_type}/", f"{context.base_url.rstrip('/')}/{resource_type}/")
        ids = {
            value[len(prefix):]
            for doc in docs
            for value in _index_values(doc, ref.code)
            for prefix in prefixes
            if isinstance(value, str) and value.startswith(prefix) and "/" not in value[len(prefix):]
        }
        return [_one_of("_id", sorted(ids))] if ids else []

    async def _inner_ids(self, resource_type: str, criteria: list[Criterion], context: _Context) -> list[str]:
        compiled = await self.compile(resource_type, criteria, context.queries, base_url=context.base_url, strict=True)
        if compiled.impossible:
            return []
        docs = await context.queries.find(resource_type, compiled.filter, {"_id": 1}, limit=MAX_INNER_IDS + 1)
        if len(docs) > MAX_INNER_IDS:
            raise FhirError(400, "too-costly", f"A chained search matches more than {MAX_INNER_IDS} {resource_type} resources; narrow it")
        return [d["_id"] for d in docs]

    # ------------------------------------------------------------------ execution
    def usable_sort(self, resource_type: str, sort: list[tuple[str, bool]], strict: bool) -> list[tuple[str, bool]]:
        """The sort keys naming known parameters; an unknown one is an error only under strict handling."""
        known: list[tuple[str, bool]] = []
        for name, descending in sort:
            if name in ("_id", "_lastUpdated") or self.registry.get(resource_type, name) is not None:
                known.append((name, descending))
            elif strict:
                raise FhirError(400, "invalid", f"Cannot sort {resource_type} on unknown parameter '{name}'", ["_sort"])
        return known

    def sort_fields(self, sort: list[tuple[str, bool]]) -> list[SortField]:
        """Stored fields for known sort keys (see `usable_sort`), with the id as final tiebreak."""
        fields: list[SortField] = []
        for position, (name, descending) in enumerate(sort):
            if name == "_id":
                fields.append(SortField("sid", descending))
            elif name == "_lastUpdated":
                fields.append(SortField("ts", descending))
            else:
                # `sk` keys end with the id, so ties on them are never left to a following key.
                last = position == len(sort) - 1
                fields.append(SortField(sk_field(name) if last else ix_field(name + SORT_VALUE), descending))
        return with_tiebreak(fields)

    async def ids(self, resource_type: str, params: list[tuple[str, str]], queries: Queries, limit: int) -> list[str]:
        """Ids matching conditional-operation criteria (always strict: a typo must not match everything)."""
        criteria = [parse_criterion(n, v) for n, v in params]
        compiled = await self.compile(resource_type, criteria, queries, base_url="", strict=True)
        if compiled.impossible:
            return []
        return [d["_id"] for d in await queries.find(resource_type, compiled.filter, {"_id": 1}, limit=limit)]

    async def search(
        self, resource_type: str, request: SearchRequest, queries: Queries, *, base_url: str, strict: bool, count: int
    ) -> SearchResult:
        if request.invalid and strict:
            raise request.invalid[0][1]
        compiled = await self.compile(resource_type, request.criteria, queries, base_url=base_url, strict=strict)
        if request.compartment is not None:
            within = FilterBuilder()
            within.add(compiled.filter)
            within.any_of(self.compartment.conditions(resource_type, request.compartment, base_url))
            if compartment_pins(self.registry, resource_type):
                within.add({"pat": request.compartment})
            compiled.filter, compiled.impossible = within.build(), compiled.impossible or within.impossible
        ignored = [name for name, _ in request.invalid] + compiled.ignored
        # An include naming no reference parameter is dropped from the request, so the self link
        # built from it leaves the include out.
        request.includes = self._usable_includes(request.includes, strict, ignored, "_include")
        request.revincludes = self._usable_includes(request.revincludes, strict, ignored, "_revinclude")
        sort = self.usable_sort(resource_type, request.sort, strict)
        if len(sort) < len(request.sort):
            ignored.append("_sort")
        fields = self.sort_fields(sort)
        cursor = request.cursor
        empty = SearchResult([], [], 0, None, None, compiled.used, ignored, sort)
        if compiled.impossible:
            return empty
        total: int | None = None
        # _count=0 and _summary=count ask for the number alone.
        if request.total == "accurate" or request.summary == "count" or count == 0 or (
            request.total == "estimate" and queries.fast_count
        ):
            total = await queries.count(resource_type, compiled.filter)
        if request.summary == "count" or count == 0:
            empty.total = total
            return empty
        docs, has_next, has_previous = await self._page(resource_type, compiled.filter, fields, cursor, count, queries)
        if total is None and cursor is None and not has_next:
            total = len(docs)
        matches = [from_current(resource_type, d) for d in docs]
        included = await self._includes(matches, request, base_url, queries)
        return SearchResult(
            matches, included, total,
            Cursor(True, boundary(docs[-1], fields)) if has_next and docs else None,
            Cursor(False, boundary(docs[0], fields)) if has_previous and docs else None,
            compiled.used, ignored, sort,
        )

    async def _page(
        self, resource_type: str, query: dict[str, Any], fields: list[SortField], cursor: Cursor | None, count: int,
        queries: Queries,
    ) -> tuple[list[dict[str, Any]], bool, bool]:
        order = fields if cursor is None or cursor.forward else reversed_fields(fields)
        conditions = [{}] if cursor is None else after_conditions(order, cursor.values)
        # Sort values read from `ix` must come back for the cursor; otherwise the index stays behind.
        projection = None if any(f.field.startswith("ix.") for f in fields) else {"ix": 0}
        docs: list[dict[str, Any]] = []
        for condition in conditions:
            builder = FilterBuilder()
            builder.add(query)
            builder.add(condition)
            wanted = count + 1 - len(docs)
            docs += await queries.find(resource_type, builder.build(), projection, sort=mongo_sort(order), limit=wanted)
            if len(docs) > count:
                break
        more = len(docs) > count
        docs = docs[:count]
        if cursor is None:
            return docs, more, False
        if cursor.forward:
            return docs, more, True
        return list(reversed(docs)), True, more

    # ------------------------------------------------------------------ _include / _revinclude
    async def _includes(self, matches: list[Stored], request: SearchRequest, base_url: str,
                        queries: Queries) -> list[Stored]:
        if not matches or not (request.includes or request.revincludes):
            return []
        seen = {(s.resource_type, s.id) for s in matches}
        included: list[Stored] = []
        frontier = matches
        for depth in range(MAX_ITERATE_DEPTH):
            found: list[Stored] = []
            for include in request.includes:
                if depth == 0 or include.iterate:
                    found += await self._include(include, frontier, base_url, queries)
            for include in request.revincludes:
                if depth == 0 or include.iterate:
                    found += await self._revinclude(include, frontier, base_url, queries)
            fresh = []
            for stored in found:
                if (stored.resource_type, stored.id) not in seen:
                    seen.add((stored.resource_type, stored.id))
                    fresh.append(stored)
            included += fresh
            if not fresh or len(included) >= MAX_INCLUDED:
                break
            frontier = fresh
        return included[:MAX_INCLUDED]

    def _usable_includes(self, includes: list[Include], strict: bool, ignored: list[str], name: str) -> list[Include]:
        usable: list[Include] = []
        for include in includes:
            try:
                self._include_params(include)
            except FhirError:
                if strict:
                    raise
                ignored.append(name)
                continue
            usable.append(include)
        return usable

    def _include_params(self, include: Include) -> list[SearchParam]:
        if include.param == "*":
            return [p for p in self.registry.for_type(include.source) if p.type == "reference"]
        param = self.registry.get(include.source, include.param)
        if param is None or param.type != "reference":
            raise FhirError(400, "invalid", f"'{include.raw}' does not name a reference parameter")
        return [param]

    async def _include(self, include: Include, sources: list[Stored], base_url: str, queries: Queries) -> list[Stored]:
        params = self._include_params(include)
        relevant = [s for s in sources if s.resource_type == include.source]
        if not relevant:
            return []
        projection = {ix_field(p.code): 1 for p in params}
        query: dict[str, Any] = {"_id": {"$in": [s.id for s in relevant]}}
        if by_patient(include.source):
            # The sources were just read: their patients are known.
            query.update(_one_of("pat", sorted({s.patient for s in relevant}, key=lambda p: p or "")))
        docs = await queries.find(include.source, query, projection)
        # A reference to this server may have been written with its absolute URL.
        base = base_url.rstrip("/") + "/"
        by_type: dict[str, set[str]] = {}
        for doc in docs:
            for p in params:
                for ref in _index_values(doc, p.code):
                    ref = str(ref)
                    target, _, target_id = (ref[len(base):] if ref.startswith(base) else ref).partition("/")
                    if target_id and "/" not in target_id and target in self.resource_types and include.target in (None, target):
                        by_type.setdefault(target, set()).add(target_id)
        return await self.fetch(by_type, queries)

    async def _revinclude(self, include: Include, targets: list[Stored], base_url: str, queries: Queries) -> list[Stored]:
        params = self._include_params(include)
        relative = [f"{t.resource_type}/{t.id}" for t in targets if include.target in (None, t.resource_type)]
        keys = relative + [f"{base_url.rstrip('/')}/{key}" for key in relative]
        if not keys or include.source not in self.resource_types:
            return []
        out: list[Stored] = []
        for p in params:
            docs = await queries.find(include.source, {ix_field(p.code): {"$in": keys}, "del": False}, {"ix": 0},
                                      limit=MAX_INCLUDED)
            out += [from_current(include.source, d) for d in docs]
        return out

    async def fetch(self, by_type: dict[str, set[str]], queries: Queries) -> list[Stored]:
        """The current resources of these ids, by type, that the caller's queries see."""
        out: list[Stored] = []
        for rtype, ids in by_type.items():
            query: dict[str, Any] = {"_id": {"$in": sorted(ids)}, "del": False}
            if rtype == COMPARTMENT:
                # A Patient's `pat` is its own id.
                query["pat"] = {"$in": sorted(ids)}
            elif by_patient(rtype):
                # One targeted round trip to the routing table names their patients.
                routes = await queries.routes(rtype, sorted(ids))
                if not routes:
                    continue
                query = {"_id": _one_of("_id", sorted(routes))["_id"], "del": False,
                         **_one_of("pat", sorted(set(routes.values()), key=lambda p: p or ""))}
            docs = await queries.find(rtype, query, {"ix": 0})
            out += [from_current(rtype, d) for d in docs]
        return out


def _one_of(field_name: str, values: list[Any]) -> dict[str, Any]:
    # One value is an equality, which the embedded store answers from its index; `$in` makes it scan.
    return {field_name: values[0]} if len(values) == 1 else {field_name: {"$in": values}}


def _index_values(doc: dict[str, Any], code: str) -> list[Any]:
    """The index values of a document read with a projection on `ix.<code>`.

    The embedded store answers such a projection with a flat `"ix.<code>"` key where MongoDB
    gives a nested `ix` document; both are read.
    """
    nested = (doc.get("ix") or {}).get(field_key(code))
    return _as_list(nested if nested is not None else doc.get(ix_field(code)))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
