"""What FHIR R4 says, read from the specification's own files when first used: the resource types
and their elements (`structure`, from `profiles/r4/`), primitive rules (`primitives`), each
element's type for the transaction rewrite (`elements`) and the Patient compartment
(`compartment`)."""
