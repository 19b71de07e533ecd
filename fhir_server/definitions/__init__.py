"""What FHIR R4 says, read from the specification's own files (`profiles/r4/`) when first used:
the resource types and their elements (`structure`), primitive rules (`primitives`), required
code lists (`valuesets`) and the Patient compartment (`compartment`)."""
