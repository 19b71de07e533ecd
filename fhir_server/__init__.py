"""FHIR R4 interoperability server for a national personal health record."""

FHIR_VERSION = "4.0.1"
