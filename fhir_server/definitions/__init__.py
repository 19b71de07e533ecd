"""What FHIR R4 says about resources and datatypes, read from the specification's own data."""
