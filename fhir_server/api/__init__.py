"""The FHIR REST API over HTTP (FHIR R4 http.html)."""
