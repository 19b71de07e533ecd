"""CDA R2 toolkit: safe parsing and conversion of CI-SIS documents to FHIR R4."""

from cda.convert import CdaConversion, convert_cda
from cda.errors import CdaError

__all__ = ["CdaConversion", "CdaError", "convert_cda"]
