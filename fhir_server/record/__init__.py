"""The record's lifecycle: enrolment of the insured (`fhir-server enrol`), status transitions."""
