"""Two spaces share the server's paths: the API (FHIR, OAuth, intake), called by programs with
bearer tokens and open to browser apps through CORS; and pages, everything else, seen by people in a
browser through the page layer (fhir_server.web.layer) and never behind a bearer token.

A new page route needs nothing here (its router is tagged `page`, fhir_server.web.pages.PAGE). A
new machine endpoint outside these prefixes (an OAuth introspection endpoint, say)
must be added, or the page layer refuses its POSTs for
want of a CSRF token: the mistake shows as a refusal, never as an opening.
"""

from __future__ import annotations

# Everything under these is API (a tuple: str.startswith takes it in one call, without allocating).
API_PREFIXES = ("/fhir", "/ingest/", "/.well-known/", "/auth/token", "/auth/revoke", "/auth/jwks", "/health/")
# The CapabilityStatement is also served at the root; Prometheus scrapes /metrics with a bearer token;
# /openapi.json describes the API (fhir_server.api.openapi).
API_PATHS = frozenset({"/metadata", "/metrics", "/openapi.json"})


def is_api(path: str) -> bool:
    return path.startswith(API_PREFIXES) or path in API_PATHS
