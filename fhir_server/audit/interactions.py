"""Which interaction an HTTP request is, read from its method and path as the routes define them
(fhir_server/api/*_routes.py), for the AuditEvent's subtype."""

from __future__ import annotations

SEARCHES = frozenset({"search-type", "search-system", "history-type", "history-system"})
WRITES = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def classify(method: str, path: str) -> tuple[str, str | None]:
    """(interaction, resource type) of a request; "bundle" is a batch or transaction, told apart
    once the bundle processor has read its type (fhir_server.audit.trace)."""
    if not path.startswith("/fhir"):
        return "operation", None
    parts = [p for p in path[len("/fhir"):].split("/") if p]
    if not parts:
        return ("bundle" if method == "POST" else "search-system"), None
    first = parts[0]
    if first.startswith("$"):
        return "operation", None
    if first == "_history":
        return "history-system", None
    if first == "_search":
        return "search-system", None
    if first == "metadata":
        return "capabilities", None
    if len(parts) == 1:
        return (WRITES.get(method, "search-type") if method != "GET" else "search-type"), first
    second = parts[1]
    if second == "_search":
        return "search-type", first
    if second == "_history":
        return "history-type", first
    if second.startswith("$"):
        return "operation", first
    if len(parts) == 2:
        return ("read" if method in ("GET", "HEAD") else WRITES.get(method, "operation")), first
    third = parts[2]
    if third == "_history":
        return ("vread" if len(parts) > 3 else "history-instance"), first
    if third.startswith("$"):
        return "operation", first
    # A compartment search: /fhir/Patient/{id}/{type}.
    return "search-type", third
