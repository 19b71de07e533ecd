"""The hot FHIR interactions without FastAPI's routing: read, vread and search-type by GET, create
by POST.

Every request to the API used to walk the app's twenty routers, and FastAPI's request and
dependency layer, before its endpoint ran: 10 % and 7.5 % of a read's server CPU (issue 18,
docs/PERFORMANCE.md). `HotRoutes` is put first in the app's routes: for `GET /fhir/{type}`,
`GET /fhir/{type}/{id}`, `GET /fhir/{type}/{id}/_history/{version}` and `POST /fhir/{type}` it
matches with one split of the path and calls the very endpoints the FastAPI routes call
(instance_routes.read and vread, type_routes.search_get and create) with a plain Starlette Request. Everything around the endpoint stays as
it is: the middlewares (authentication, rate limits, audit before the answer)
run before routing, and the app's exception handlers turn errors into the same OperationOutcomes.

It only takes what the FastAPI routes would have given those endpoints: a type no other route of
the app for the same method could claim for that path's shape (`claimed`: AuditEvent's own routes, say), an id
that is a FHIR id and a version made of digits; anything else goes on to the routes as before.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Receive, Scope, Send

# FHIR R4 datatypes.html#id; a version id here is the server's own, an integer.
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
HISTORY = "_history"
Endpoint = Callable[..., Awaitable[Response]]

# The shapes served, as segments after the leading slash: "T" the type, "I" an id, "V" a version.
SHAPES = {"search": ("fhir", "T"), "read": ("fhir", "T", "I"), "vread": ("fhir", "T", "I", HISTORY, "V"),
          "create": ("fhir", "T")}
# The method of each shape's requests.
METHODS = {"search": "GET", "read": "GET", "vread": "GET", "create": "POST"}


@dataclass(frozen=True)
class _Format:
    """A route's path as segments, and whether its last parameter takes the rest of the path."""
    segments: tuple[str, ...]
    open_ended: bool


def _is_parameter(segment: str) -> bool:
    return "{" in segment


def _could_be(segment: str, kind: str, resource_type: str) -> bool:
    """Whether a route's path segment can be what a shape has at this place for this type."""
    if _is_parameter(segment):
        return True
    if kind == "T":
        return segment == resource_type
    if kind == "I":
        return FHIR_ID.fullmatch(segment) is not None
    if kind == "V":
        return segment.isdigit()
    return segment == kind


def _overlaps(route: _Format, shape: tuple[str, ...], resource_type: str) -> bool:
    if route.open_ended:
        # `{rest:path}` and mounts take any number of segments after their prefix.
        prefix = route.segments[:-1] if route.segments and _is_parameter(route.segments[-1]) else route.segments
        return len(prefix) <= len(shape) and all(_could_be(s, k, resource_type) for s, k in zip(prefix, shape))
    return len(route.segments) == len(shape) and all(
        _could_be(s, k, resource_type) for s, k in zip(route.segments, shape))


def _formats(routes: Iterable[Any], prefix: str, served: frozenset[Endpoint], method: str) -> Iterator[_Format]:
    """The path formats of every route a request of `method` may reach, other than the endpoints
    served here."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _formats(included.routes, prefix + route.include_context.prefix, served, method)
            continue
        if isinstance(route, HotRoutes) or getattr(route, "endpoint", None) in served:
            continue
        if isinstance(route, Mount):
            yield _Format(tuple((prefix + route.path).strip("/").split("/")), True)
            continue
        methods = getattr(route, "methods", None)
        path = getattr(route, "path", None)
        if path is None or (methods is not None and method not in methods):
            continue  # websocket routes, and routes of other methods
        segments = tuple((prefix + path).lstrip("/").split("/"))
        yield _Format(segments, ":path}" in path)


def claimed(routes: Iterable[Any], resource_types: Iterable[str],
            served: frozenset[Endpoint]) -> dict[str, frozenset[str]]:
    """Shape -> the types some other route of the app could answer for a request of that shape."""
    routes, resource_types = list(routes), list(resource_types)
    formats = {method: list(_formats(routes, "", served, method)) for method in set(METHODS.values())}
    return {name: frozenset(t for t in resource_types if any(_overlaps(f, shape, t) for f in formats[METHODS[name]]))
            for name, shape in SHAPES.items()}


class HotRoutes(BaseRoute):
    def __init__(self, endpoints: dict[str, Endpoint], resource_types: Iterable[str],
                 claimed_types: dict[str, frozenset[str]]) -> None:
        self.types = {name: frozenset(resource_types) - claimed_types[name] for name in SHAPES}
        self.endpoints = endpoints

    def _match(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        parts = path.split("/")
        # parts[0] is the empty string before the leading slash.
        count = len(parts)
        if count < 3 or parts[1] != "fhir" or count > 6:
            return None
        resource_type = parts[2]
        if method == "POST":
            return ("create", {"resource_type": resource_type}) \
                if count == 3 and resource_type in self.types["create"] else None
        if count == 3:
            return ("search", {"resource_type": resource_type}) if resource_type in self.types["search"] else None
        if FHIR_ID.fullmatch(parts[3]) is None:
            return None
        if count == 4:
            return ("read", {"resource_type": resource_type, "resource_id": parts[3]}) \
                if resource_type in self.types["read"] else None
        if count == 6 and parts[4] == HISTORY and parts[5].isdigit() and resource_type in self.types["vread"]:
            return "vread", {"resource_type": resource_type, "resource_id": parts[3], "version": parts[5]}
        return None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST") or scope.get("root_path"):
            return Match.NONE, {}
        found = self._match(scope["method"], scope["path"])
        if found is None:
            return Match.NONE, {}
        name, params = found
        return Match.FULL, {"endpoint": self.endpoints[name], "path_params": params, "hot_route": name}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # What the endpoint raises goes up to the app's ExceptionMiddleware, which wraps the
        # router with the same handlers Starlette's request_response would have used again here.
        response = await scope["endpoint"](Request(scope, receive, send), **scope["path_params"])
        await response(scope, receive, send)


def install(router: Any, endpoints: dict[str, Endpoint], resource_types: Iterable[str]) -> HotRoutes:
    """Put the hot routes first in `router` (the app's, once every router is included)."""
    types = list(resource_types)
    hot = HotRoutes(endpoints, types, claimed(router.routes, types, frozenset(endpoints.values())))
    router.routes.insert(0, hot)
    return hot

