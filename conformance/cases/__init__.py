"""The test cases, one module per area; importing this package registers them all, in the order
the runs and reports follow: FHIR REST, search, bundles, IHE MHD/PDSm, access rules, HL7 v2, CDA."""

from conformance.cases import rest, search, bundles, mhd, access, hl7v2, cda  # noqa: F401,I001
