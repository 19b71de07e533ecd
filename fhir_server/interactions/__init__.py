"""FHIR interactions, each in one place whatever route or Bundle entry asks for it."""
