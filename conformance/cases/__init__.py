"""The test cases, one module per area; importing this package registers them all."""

from conformance.cases import access, bundles, cda, hl7v2, mhd, rest, search  # noqa: F401
