"""Which interaction an HTTP request is, read from its method and path as the routes define them
(fhir_server/api/*_routes.py), for the AuditEvent's subtype."""

from __future__ import annotations

SEARCHES = frozenset({"search-type", "search-system", "history-type", "history-system"})
WRITES = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def classify(method: str, path: str) -> str:
    """The interaction of a request (a key of `interactions` in profiles/audit/audit-event.json);
    "bundle" is a batch or transaction, told apart once the bundle processor has read its type
    (fhir_server.audit.trace). Requests outside /fhir (/ingest/*) are operations."""
    parts = [p for p in path[len("/fhir"):].split("/") if p] if path.startswith("/fhir") else None
    if parts is None or (parts and parts[0].startswith("$")):
        return "operation"
    if not parts:
        return "bundle" if method == "POST" else "search-system"
    special = {"_history": "history-system", "_search": "search-system", "metadata": "capabilities"}
    if parts[0] in special:
        return special[parts[0]]
    if len(parts) == 1:
        return "search-type" if method in ("GET", "HEAD") else WRITES.get(method, "operation")
    second = parts[1]
    if second == "_search":
        return "search-type"
    if second == "_history":
        return "history-type"
    if second.startswith("$"):
        return "operation"
    if len(parts) == 2:
        return "read" if method in ("GET", "HEAD") else WRITES.get(method, "operation")
    if parts[2] == "_history":
        return "vread" if len(parts) > 3 else "history-instance"
    # /fhir/{type}/{id}/$op, or a compartment search /fhir/Patient/{id}/{type}; $everything is
    # a compartment search across types and is audited as one (its query kept).
    return "operation" if parts[2].startswith("$") and parts[2] != "$everything" else "search-type"
