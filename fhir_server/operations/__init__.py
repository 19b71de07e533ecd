"""FHIR operations and interactions that are more than one repository call, one per module."""
